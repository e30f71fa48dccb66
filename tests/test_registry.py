"""The generic Registry: registration, lookup errors, globbing, duplicates, lazy module import."""

import pytest

from og.registry import ALL_REGISTRIES, Registry, RegistryError


def make() -> Registry:
    reg = Registry("widget")

    @reg.register("alpha")
    class Alpha:
        """The first widget.

        More text that is not shown."""

    @reg.register("alpine")
    def alpine():
        """A factory widget."""
        return "built"

    return reg


def test_register_and_get():
    reg = make()
    assert reg.get("alpha").__name__ == "Alpha"
    assert reg.build("alpine") == "built"
    assert "alpha" in reg and "beta" not in reg
    assert len(reg) == 2 and list(reg) == ["alpha", "alpine"]


def test_unknown_name_lists_valid_names_and_closest_match():
    reg = make()
    with pytest.raises(RegistryError) as err:
        reg.get("alpah")
    msg = str(err.value)
    assert msg == "unknown widget 'alpah'. Did you mean 'alpha'? Valid: alpha, alpine"
    with pytest.raises(KeyError):  # a RegistryError is a KeyError
        reg.get("zzz")


def test_glob_listing_and_describe():
    reg = make()
    assert reg.list("alp*") == ["alpha", "alpine"]
    assert reg.list("*ine") == ["alpine"]
    assert reg.list("x*") == []
    assert reg.describe() == {"alpha": "The first widget.", "alpine": "A factory widget."}


def test_duplicate_names_are_refused():
    reg = make()
    with pytest.raises(RegistryError, match="already registered"):

        @reg.register("alpha")
        class Other:
            pass


def test_reregistering_the_same_object_is_harmless():
    reg = Registry("thing")

    class A:
        pass

    reg.register("a")(A)
    reg.register("a")(A)
    assert reg.list() == ["a"]


def test_lazy_modules_are_imported_on_first_lookup():
    reg = Registry("lazy", modules=("json",))
    assert reg._loaded is False
    reg.list()
    assert reg._loaded is True


def test_component_registries_are_importable_from_og():
    import og

    for name in ("ENCODERS", "SEGMENTERS", "DOWNSAMPLERS", "FUSIONS", "POSITIONS", "PROJECTORS", "LLMS"):
        assert isinstance(getattr(og, name), Registry)
    assert set(ALL_REGISTRIES) >= {"encoders", "segmenters", "fusions", "llms"}
