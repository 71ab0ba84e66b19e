"""Members of two widths in one packed ensemble (``model.mixed_width=true``): half narrow, half wide.

On a small table the width that fits best is a guess. The heuristic's narrow layer wins on some tables
(Housing), a wide one on others (TeachingRatings, Boston), and no rule on the table's shape told them
apart (docs/tabular.md, "Members of two widths"). A packed ensemble (nn/ensemble.py) can hedge instead
of guessing: its layer is built ``WIDE`` units wide, and half of its members use only the first units
(the given width). Their other units start with zero incoming weights, zero bias and zero outgoing
weights. Such a unit outputs act(0) = 0, so its outgoing weights get a zero gradient, and nothing flows
back through them to its incoming weights; an optimizer moves a weight whose gradient and moments are
zero by zero (weight decay of a zero weight is zero too). So those units stay exactly zero through
training, resume and export, and each narrow member is the network of the narrow width. The prediction
averages both kinds, as for any packed ensemble.

It holds only for activations with act(0) = 0 (ReLU and its smooth kin, tanh; not sigmoid or softplus),
which is checked before it is used. It is an option, not a default: chosen on 17 small regressions
(13 higher, mean +0.011 R²), it did not hold on 15 fresh ones (8 higher, 6 lower, mean -0.006).
"""
from __future__ import annotations

import torch

from trainwell.core.errors import UserError
from trainwell.nn.activations import make_activation

WIDE = 128            # the wide members' units: about scikit-learn's MLP default of 100, as a power of two


def preserves_zero(activation: str) -> bool:
    """Whether ``act(0) = 0``: a unit with zero weights in and out then stays zero (module docstring)."""
    with torch.no_grad():
        return float(make_activation(activation)(torch.zeros(1)).abs().max()) == 0.0


def member_widths_choice(setting: bool, *, members: int, hidden: list[int], activation: str
                         ) -> tuple[list[int] | None, str]:
    """``model.mixed_width``: each packed member's width (None: one width for all), and the decision line.

    Off by default: on tables it was not chosen on it did not pay (docs/tabular.md#members-of-two-widths).
    ``true`` asks for it on a packed single-layer MLP narrower than ``WIDE``, and says why when it cannot be given.
    """
    if not setting:
        return None, ""
    why_not = _unsupported(members, hidden, activation)
    if why_not:
        raise UserError(f"model.mixed_width=true trains half the packed members {WIDE} units wide and half at "
                        f"the given width, but {why_not}. Set model.mixed_width=false, or change that "
                        f"(docs/tabular.md#members-of-two-widths).")
    narrow = int(hidden[0])
    widths = [narrow] * (members // 2) + [WIDE] * (members - members // 2)
    return widths, (f"mixed width: {members // 2} members {narrow} units wide, {members - members // 2} members "
                    f"{WIDE} wide, their predictions averaged (model.mixed_width=true; "
                    f"docs/tabular.md#members-of-two-widths)")


def _unsupported(members: int, hidden: list[int], activation: str) -> str:
    """What rules two widths out, in the user's terms; empty when nothing does."""
    if members < 2:
        return "there is one network (model.ensemble=1, or a model that is not packed)"
    if len(hidden) != 1:
        return f"the network has {len(hidden)} hidden layers, not one"
    if int(hidden[0]) >= WIDE:
        return f"its layer is already {hidden[0]} units wide, not narrower than {WIDE}"
    if not preserves_zero(activation):
        return f"{activation}(0) is not 0, so the narrow members' unused units would not stay zero"
    return ""


def summary(n_inputs: int, widths: list[int], n_outputs: int) -> str:
    """The model line's shape: ``6-16|128-1``."""
    return f"{n_inputs}-{'|'.join(str(w) for w in sorted(set(widths)))}-{n_outputs}"
