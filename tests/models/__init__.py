from vaekit.models import MODELS

# Small sizes per kind, so every model builds and runs in milliseconds.
SMALL = {"image": {"image_shape": (1, 12, 10)}, "text": {"vocab_size": 50, "max_len": 9},
         "tabular": {"n_features": 7}}

# Every registered model at its defaults, plus the options that change which layers exist or how the
# model runs while training: the contract and export tests run over all of them.
VARIANTS = [(name, {}) for name in sorted(MODELS)] + [("text-rnn", {"tie_embeddings": False}),
                                                       ("text-rnn", {"weight_drop": 0.5})]


def variant_id(variant) -> str:
    name, options = variant
    return name + "".join(f"-{k}" for k in options)


def build_variant(variant):
    from vaekit.models import build_model

    name, options = variant
    return build_model(name, **SMALL.get(MODELS[name][0].kind, {}), **options)
