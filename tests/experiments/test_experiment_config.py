"""Configs: every study's YAML loads; bad input is refused with a message naming the key, and writes
nothing."""

import pytest

from experiments import STUDIES, ConfigError, DatasetError, ExperimentError, load_config, run_study
from experiments.run import CONFIG_DIR


def assert_nothing_written(root):
    assert not root.exists() or list(root.rglob("*")) == []


def test_every_study_has_a_complete_yaml_config():
    assert sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")) == sorted(STUDIES)
    for name in STUDIES:
        cfg = load_config(name)
        assert cfg.seed == 0


def test_overrides_change_the_named_values_and_convert_types():
    cfg = load_config(
        "optimizers", ["optim.adam.lr=0.01", "model.hidden=[32,16]", "train.epochs=2"]
    )
    assert cfg.optim.adam.lr == 0.01
    assert list(cfg.model.hidden) == [32, 16]
    assert cfg.train.epochs == 2
    # An int given for a float key is converted, so metrics do not depend on how it was typed.
    assert isinstance(load_config("momentum", ["optim.lr=1"]).optim.lr, float)


def test_resolved_config_is_read_only():
    cfg = load_config("momentum")
    with pytest.raises(Exception, match="read-only"):
        cfg.optim.lr = 1.0


def test_unknown_study_names_the_accepted_studies(tmp_path):
    with pytest.raises(
        ExperimentError,
        match=(
            r"unknown study 'digits'; accepted studies: "
            r"optimizers, bias_correction, clipping, momentum"
        ),
    ):
        run_study("digits", out_root=tmp_path)
    assert_nothing_written(tmp_path)


def test_unknown_key_names_the_key_and_its_accepted_siblings(tmp_path):
    with pytest.raises(ConfigError) as err:
        run_study("clipping", ["optim.learning_rate=0.1"], out_root=tmp_path)
    message = str(err.value)
    assert "unknown config key 'optim.learning_rate'" in message
    assert "accepted keys: optim.lr (float), optim.momentum (float)" in message
    assert_nothing_written(tmp_path)


def test_unknown_top_level_key_lists_every_key():
    with pytest.raises(
        ConfigError,
        match=r"unknown config key 'epochs'.*accepted keys: seed \(int\), data.n_samples \(int\)",
    ):
        load_config("momentum", ["epochs=3"])


def test_wrongly_typed_value_names_the_key_and_the_expected_type(tmp_path):
    with pytest.raises(ConfigError) as err:
        run_study("clipping", ["optim.lr=abc"], out_root=tmp_path)
    message = str(err.value)
    assert "invalid value for config key 'optim.lr'" in message
    assert "Value 'abc' of type 'str' could not be converted to Float" in message
    assert message.endswith("expected float")
    assert_nothing_written(tmp_path)


def test_wrongly_typed_list_element_names_the_list_key():
    with pytest.raises(ConfigError, match=r"config key 'model.hidden\[1\]'.*expected list\[int\]"):
        load_config("optimizers", ["model.hidden=[32,wide]"])


def test_override_without_equals_sign_is_refused():
    with pytest.raises(
        ConfigError,
        match=r"override 'optim.lr' is not of the form key=value; accepted keys: seed \(int\)",
    ):
        load_config("momentum", ["optim.lr"])


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "optim.lr=-0.1",
            r"invalid value -0.1 for config key 'optim.lr': expected a positive number",
        ),
        (
            "optim.momentum=1.0",
            r"invalid value 1.0 for config key 'optim.momentum': expected a number in \[0, 1\)",
        ),
        (
            "train.batch_size=0",
            r"invalid value 0 for config key 'train.batch_size': expected a positive integer",
        ),
        ("model.hidden=[]", r"'model.hidden': expected a non-empty list of positive layer widths"),
        (
            "data.dataset=mnist",
            r"invalid value 'mnist' for config key 'data.dataset': expected one of: digits",
        ),
    ],
)
def test_out_of_range_values_name_the_key_and_the_accepted_values(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        run_study("clipping", [override], out_root=tmp_path)
    assert_nothing_written(tmp_path)


def test_gaussian_mean_must_have_two_coordinates():
    with pytest.raises(ConfigError, match=r"'data.mean': expected a list of two numbers"):
        load_config("momentum", ["data.mean=[1.0,2.0,3.0]"])


def test_missing_dataset_is_reported_and_nothing_is_written(tmp_path, monkeypatch):
    import sklearn.datasets

    def missing(**kwargs):
        raise FileNotFoundError("[Errno 2] No such file or directory: 'digits.csv.gz'")

    monkeypatch.setattr(sklearn.datasets, "load_digits", missing)
    with pytest.raises(
        DatasetError, match=r"digits data set not found: it ships inside scikit-learn"
    ):
        run_study("optimizers", ["train.epochs=1"], out_root=tmp_path)
    assert_nothing_written(tmp_path)


def test_validation_split_larger_than_the_data_set_names_the_key(tmp_path):
    with pytest.raises(
        DatasetError, match=r"data.val_size must be between 1 and 1796 for digits, got 1797"
    ):
        run_study("clipping", ["data.val_size=1797"], out_root=tmp_path)
    assert_nothing_written(tmp_path)


def test_override_that_is_not_valid_yaml_is_quoted_in_the_error():
    with pytest.raises(
        ConfigError, match=r"override 'optim.lr=\[1,' is not valid YAML after the '='"
    ):
        load_config("momentum", ["optim.lr=[1,"])


def test_value_assigned_to_a_section_names_the_section():
    with pytest.raises(
        ConfigError, match=r"invalid value for config key 'optim' in override 'optim=3'"
    ):
        load_config("momentum", ["optim=3"])
