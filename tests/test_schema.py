import re

import pytest

from vaekit.errors import VaekitError
from vaekit.modalities.image import ImageDataConfig
from vaekit.models.conv import ConvVAEConfig
from vaekit.schema import check_fields, check_keys
from vaekit.training import TrainConfig


def test_json_values_become_the_dataclass_types():
    values = check_fields(ConvVAEConfig, {"image_shape": [1, 8, 8], "channels": [4, 8], "batch_norm": True},
                          "model")
    assert values == {"image_shape": (1, 8, 8), "channels": (4, 8), "batch_norm": True}
    assert check_fields(TrainConfig, {"lr": 1, "epochs": 3}, "train") == {"lr": 1.0, "epochs": 3}
    assert check_fields(ImageDataConfig, {"image_size": None, "limit": None}, "data") == {"image_size": None,
                                                                                         "limit": None}


@pytest.mark.parametrize("cls,values,match", [
    (TrainConfig, {"epochs": "3"}, "'epochs' must be a whole number, got '3'"),
    (TrainConfig, {"batch_size": 2.5}, "'batch_size' must be a whole number"),
    (TrainConfig, {"epochs": True}, "'epochs' must be a whole number, got True"),
    (TrainConfig, {"seed": 2**64}, "'seed' must be a whole number"),
    (TrainConfig, {"lr": float("nan")}, "'lr' must be a finite number"),
    (TrainConfig, {"lr": 10**400}, "'lr' must be a finite number"),
    (TrainConfig, {"progress": "yes"}, "'progress' must be true or false"),
    (TrainConfig, {"device": ["cpu"]}, "'device' must be a string"),
    (TrainConfig, {"device": "x" * 5000}, "at most 4096 characters"),
    (TrainConfig, {"evil": 1, "\nworse": 2}, "unknown keys: '\\nworse', evil"),
    (ConvVAEConfig, {"image_shape": [1, 8]}, "'image_shape' must have 3 items"),
    (ConvVAEConfig, {"channels": list(range(1000))}, "at most 256 items"),
    (ConvVAEConfig, {"channels": [4, "8"]}, "'channels' must be a whole number"),
    (ImageDataConfig, {"image_size": [8, None]}, "'image_size' must be a whole number"),
    (ImageDataConfig, [1, 2], "must be a JSON object, got list"),
])
def test_hostile_values_are_refused_with_the_key_named(cls, values, match):
    with pytest.raises(VaekitError, match=re.escape(match)):
        check_fields(cls, values, "config.json 'x'")


TOP = {"format": str, "format_version": int, "model": dict}


def test_check_keys_takes_known_keys_of_their_types():
    check_keys({"format": "vaekit-run", "format_version": 1, "model": {"anything": [1]}}, TOP, "config.json")
    check_keys({}, TOP, "config.json")  # which keys are required is the reader's business


@pytest.mark.parametrize("values,match", [
    ({"format": "x", "evil": 1}, "config.json has unknown keys: evil"),
    ({"model": [1, 2]}, "config.json 'model' must be a JSON object, got [1, 2]"),
    ({"format_version": True}, "config.json 'format_version' must be a whole number, got True"),
    ({"format": 3}, "config.json 'format' must be a string"),
    ([1], "config.json must be a JSON object, got list"),
])
def test_check_keys_refuses_unknown_keys_and_wrong_types(values, match):
    with pytest.raises(VaekitError, match=re.escape(match)):
        check_keys(values, TOP, "config.json")
