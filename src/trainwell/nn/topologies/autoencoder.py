"""``model.type: autoencoder`` (Hinton & Salakhutdinov 2006; docs/topologies/autoencoder.md); modules in
nn/autoencoder.py. Its inputs are its targets (``InputLayout.reconstructs``)."""
from __future__ import annotations

import math
from typing import Any

from trainwell.core.inputs import InputLayout, conv_layout
from trainwell.nn.autoencoder import Autoencoder
from trainwell.nn.topology import Topology, augment_arch, base_arch, batch_128
from trainwell.nn.topologies.cnn import CONV_KEYS


def resolve(spec: Any, prep: Any) -> tuple[dict, list[str]]:
    """A dense funnel (or stride-2 convolutions, model.encoder=conv) to model.bottleneck, decoder mirrored."""
    m = spec.model
    arch, notes = base_arch(spec, prep)
    augment_arch(spec, arch, notes)
    kind = "dense" if m.encoder == "auto" else m.encoder
    if kind == "conv":
        dims, cshape, why = conv_layout(arch["input_shape"], m.conv_dims)
        arch.update(conv_dims=dims, conv_shape=cshape, channels=list(m.channels), kernel_size=m.kernel_size)
        notes.append(f"input: {why}; conv encoder (stride-2 convolutions), transposed-conv decoder")
    if m.hidden == "auto":
        top = min(256, 2 ** int(math.log2(max(arch["n_inputs"], 2))))
        hidden = [w for w in (top, top // 2) if w > 2 * m.bottleneck][:2] or [max(top, m.bottleneck)]
        if kind == "conv":
            hidden = []
        notes.append(f"encoder widths {hidden} -> bottleneck {m.bottleneck}, decoder mirrored (auto)")
    else:
        hidden = list(m.hidden)
    arch.update(encoder=kind, hidden=hidden, bottleneck=m.bottleneck, denoise=m.denoise)
    if m.denoise:
        notes.append(f"denoising: training inputs get Gaussian noise sigma {m.denoise:g}; targets stay clean")
    return arch, notes


def describe(arch: dict[str, Any]) -> str:
    shape = "x".join(map(str, arch["input_shape"]))
    if arch["encoder"] == "conv":
        enc = " -> ".join(f"conv{c}/2" for c in arch["channels"])
    else:
        enc = " -> ".join(f"dense{h}" for h in arch["hidden"]) or "dense"
    dn = f", denoising sigma {arch['denoise']:g}" if arch.get("denoise") else ""
    return f"autoencoder {shape} -> {enc} -> code {arch['bottleneck']} -> mirrored decoder -> {shape}{dn}"


def model_keys(model: dict) -> tuple[str, ...]:
    """Its own keys, and the conv keys when the encoder is convolutional."""
    own = ("bottleneck", "denoise", "encoder")
    return own if model.get("encoder") == "dense" else own + CONV_KEYS


TOPOLOGY = Topology(
    name="autoencoder",
    description="encoder -> bottleneck code -> mirrored decoder, trained to reproduce its inputs (dense or "
                "conv encoder; denoising with model.denoise); `trainwell encode` gives the codes",
    resolve=resolve, build=Autoencoder, describe=describe, defaults=batch_128,
    inputs=InputLayout(shaped=True, pixels=True, auto_scale="channel", table_scale=None, reconstructs=True),
    model_keys=model_keys,
    ignores=("dropout", "batchnorm", "residual", "preset", "ensemble"),
)
