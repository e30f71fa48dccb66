"""Specs: id round trips for every preset and for switches, validation errors, replace."""

import dataclasses

import pytest

from og.presets import preset
from og.spec import PRESETS, EncoderSpec, FusionSpec, ModelSpec, SegmenterSpec, SpecError


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_round_trips_through_its_id(name):
    spec = PRESETS[name]
    assert ModelSpec.parse(spec.id, validate=False) == spec
    assert ModelSpec.parse(name) is spec
    assert ModelSpec.from_dict(spec.to_dict()) == spec


def test_switches_round_trip_and_only_non_defaults_are_written():
    text = ("clip:tiny(layer=-1)+slic(compactness=10.5,n_segments=16)"
            "+masktoken(filler=true,threshold=0.3,max_tokens=64)+segment(max_segments=50)+linear+tiny-llama")
    spec = ModelSpec.parse(text, validate=False)
    assert spec.id == text
    assert spec.encoder.layer == -1 and spec.fusion.filler is True and spec.fusion.max_tokens == 64
    assert spec.segmenter.option("n_segments") == 16
    assert FusionSpec().id == "masktoken"


def test_paper_presets():
    assert preset("llava-1.5").fusion.name == "patches"
    og_spec = preset("og-llava")
    assert (og_spec.encoder.variant, og_spec.segmenter.name, og_spec.fusion.name) == ("l336", "sam2", "masktoken")
    assert og_spec.uses_masks and not preset("llava-1.5").uses_masks


def test_replace_builds_ablations():
    spec = preset("tiny-og")
    pooled = spec.replace(fusion="maskpool(global_view=none)")
    assert pooled.fusion == FusionSpec("maskpool", global_view="none")
    assert pooled.encoder == spec.encoder
    assert dataclasses.replace(spec, encoder=EncoderSpec("siglip", "tiny")).encoder.name == "siglip"
    with pytest.raises(SpecError, match="no part 'fuson'"):
        spec.replace(fuson="maskpool")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("clip:tiny+none+patches", "has 3 parts; expected 6"),
        ("clip:tiny+none+masktoken(global_view=max)+none+linear+tiny-llama", "global_view='max'"),
        ("clip:tiny+none+masktoken(threshold=2)+none+linear+tiny-llama", "threshold=2.0"),
        ("clip:tiny+none+masktoken(bom_token=3)+none+linear+tiny-llama", "must be true or false"),
        ("clip:tiny+none+masktoken(colour=red)+none+linear+tiny-llama", "has no option 'colour'"),
        ("clip:tiny+none+masktoken(filler)+none+linear+tiny-llama", "must look like key=value"),
        ("clip:tiny+none+patches+none+linear:big+tiny-llama", "takes no ':variant'"),
        ("clip:tiny(layer=x)+none+patches+none+linear+tiny-llama", "must be a int"),
    ],
)
def test_bad_ids_give_clear_errors(text, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ModelSpec.parse(text, validate=False)


def test_unknown_preset_lists_presets():
    with pytest.raises(SpecError, match="presets: llava-1.5"):
        preset("og-llava-70b")


def test_segmenter_options_are_sorted_and_hashable():
    a = SegmenterSpec("sam2", "2.1-large", (("pred_iou_thresh", 0.9), ("points_per_side", 16)))
    b = SegmenterSpec.parse("sam2:2.1-large(points_per_side=16,pred_iou_thresh=0.9)")
    assert a == b and hash(a) == hash(b)
    assert a.option("points_per_side") == 16 and a.option("missing", 3) == 3
