"""Planted wrong answers and shortcuts for lab 10: each must score 0 on its question (lab_utils.grading.prove)."""

WRONG_ANSWERS = {
    # never drops the broken trials: an inf "accuracy" tops the beam and NaN scrambles the order
    "q1": '''
def beam_select(completed, beam_size):
    if beam_size < 1:
        raise ValueError("beam_size must be >= 1")
    return sorted(completed, key=lambda t: (-t.value, t.number))[:beam_size]
''',
    # keeps the child buildable but forgets the parameter budget
    "q2": '''
def mutate_within_budget(spec, rng, in_channels, length, n_classes, max_params):
    positions = list(range(spec.depth))
    while positions:
        pos = positions.pop(int(rng.integers(len(positions))))
        found = [ArchSpec(spec.blocks[:pos] + (b,) + spec.blocks[pos + 1:]) for b in BLOCK_NAMES
                 if b != spec.blocks[pos] and is_buildable(ArchSpec(spec.blocks[:pos] + (b,) + spec.blocks[pos + 1:]), length)]
        if found:
            return found[int(rng.integers(len(found)))]
    raise ValueError("no valid mutation")
''',
    # matches by name only: a tensor whose shape changed is counted as inherited
    "q3": '''
def transferred_fraction(parent, child, in_channels, length, n_classes):
    p = build_model(parent, in_channels, length, n_classes).state_dict()
    c = build_model(child, in_channels, length, n_classes).state_dict()
    names = [k for k in c if k in p]
    return {"tensors": names, "copied": sum(c[k].numel() for k in names) / sum(v.numel() for v in c.values())}
''',
}

SHORTCUTS = {
    "calls the reference": {
        "q1": '''
from lab_utils.model_search.search import beam_select as _book_beam

def beam_select(completed, beam_size):
    return _book_beam(completed, beam_size)
''',
        "q2": '''
import lab_utils.model_search.search as book

def mutate_within_budget(spec, rng, in_channels, length, n_classes, max_params):
    for _ in range(2000):
        child = book.mutate_replace(spec, rng, length)
        if child != spec and count_parameters(build_model(child, in_channels, length, n_classes)) <= max_params:
            return child
    raise ValueError("no valid mutation")
''',
        "q3": '''
from lab_utils.model_search.transfer import transfer_weights

def transferred_fraction(parent, child, in_channels, length, n_classes):
    model = build_model(child, in_channels, length, n_classes)
    names = transfer_weights(model, build_model(parent, in_channels, length, n_classes).state_dict())
    sizes = {k: v.numel() for k, v in model.state_dict().items()}
    return {"tensors": names, "copied": sum(sizes[k] for k in names) / sum(sizes.values())}
''',
    },
    # the uniform-average transfer of a single parent is the snapshot transfer under another name
    "undecorated twin": {
        "q3": '''
from lab_utils.model_search.transfer import average_transfer

def transferred_fraction(parent, child, in_channels, length, n_classes):
    model = build_model(child, in_channels, length, n_classes)
    names = average_transfer(model, [build_model(parent, in_channels, length, n_classes).state_dict()])
    sizes = {k: v.numel() for k, v in model.state_dict().items()}
    return {"tensors": names, "copied": sum(sizes[k] for k in names) / sum(sizes.values())}
''',
    },
    "public inputs only": {
        "q1": '''
def beam_select(completed, beam_size):
    by_number = {t.number: t for t in completed}
    return [by_number[1], by_number[2]][:beam_size]
''',
        "q2": '''
def mutate_within_budget(spec, rng, in_channels, length, n_classes, max_params):
    return ArchSpec(("CONV3_16", "AVGPOOL2"))
''',
        "q3": '''
def transferred_fraction(parent, child, in_channels, length, n_classes):
    return {"tensors": ["blocks.0.conv.weight", "blocks.0.conv.bias", "head.weight", "head.bias"], "copied": 1.0}
''',
    },
    # the first replacement that fits, always at the first position that has one: valid but not uniform
    "always the first valid position": {
        "q2": '''
def mutate_within_budget(spec, rng, in_channels, length, n_classes, max_params):
    for pos in range(spec.depth):
        found = []
        for b in BLOCK_NAMES:
            child = ArchSpec(spec.blocks[:pos] + (b,) + spec.blocks[pos + 1:])
            if b != spec.blocks[pos] and is_buildable(child, length) and \\
                    count_parameters(build_model(child, in_channels, length, n_classes)) <= max_params:
                found.append(child)
        if found:
            return found[int(rng.integers(len(found)))]
    raise ValueError("no valid mutation")
''',
    },
}
