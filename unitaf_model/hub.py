"""Runs on the Hugging Face Hub: `unitaf push-run` publishes a run (weights as safetensors,
records as JSON, eval reports, a model card naming the dataset, the base checkpoints and
their licences) in one commit; `open_run` resolves a run folder or a Hub model repo id
(`download_run` fetches the pushed files) and reads it with the folder opener `load_run`.
Nothing pickled is pushed or read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from unitaf_data.dataset import Dataset, is_url, read_json_file
from unitaf_data.hub import fetch_declared, hub_call, is_hub_id, open_dataset
from unitaf_data.licences import (
    Terms,
    feature_terms,
    licence_metadata,
    licence_table,
    restriction_prose,
    source_terms,
)
from unitaf_model.run import (
    BEST,
    LoadedRun,
    RunInfo,
    latest_checkpoint,
    load_run,
    pull_run,
    read_run_info,
)

# What a published run holds: records, the rig or front end it needs, the best weights and
# the last checkpoint's weights (no optimiser state), validation history and eval reports
# (tables and plots). Media (eval videos: test clips' faces with their audio) only when
# asked for: they carry the dataset's own data under the dataset's licence.
RUN_FILES = ("model.json", "config.json", "rig.npz", "front_end.safetensors",
             "best/model.safetensors", "best/best.json", "step_??????/model.safetensors",
             "validation.jsonl", "eval/*/eval.json", "eval/*/eval.md", "eval/*/*.png")
MEDIA_FILES = ("eval/*/videos/*.mp4",)
MEDIA_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".wav", ".flac", ".mp3", ".ogg",
                  ".m4a", ".opus")
UNITALKER_TERMS = Terms("UniTalker decoder checkpoint", "Apache-2.0", "apache-2.0")
# What `download_run` fetches of a pushed run: the records by name, and of the repository's
# file list only the files `load_run` reads (exact paths, no patterns).
RUN_RECORDS = ("model.json", "config.json")
_RUN_READ = re.compile(r"rig\.npz|front_end\.safetensors|best/(model\.safetensors|best\.json)"
                       r"|step_\d{6}/model\.safetensors")


def download_run(repo_id: str, revision: str | None = None) -> Path:
    """The files of a run pushed with `unitaf push-run` that `load_run` reads, from the Hub
    or the local cache, at one commit (the snapshot folder is named by it)."""
    return fetch_declared(repo_id, "model", revision, RUN_RECORDS,
                          lambda path: bool(_RUN_READ.fullmatch(path)))


def open_run(reference: str | Path, checkpoint: str = BEST) -> LoadedRun:
    """A run folder, a run at a storage URL (pulled into its staging folder first), or a
    Hub model repo id (downloaded first), with the weights of `checkpoint`, read-only."""
    run = pull_run(str(reference)) if is_url(reference) else Path(reference)
    if not run.exists():
        if not is_hub_id(str(reference)):
            raise FileNotFoundError(f"no run at {reference}: pass a folder written by "
                                    "`unitaf train`, or a Hub model repo id")
        run = download_run(str(reference))
    return load_run(run, checkpoint)


def trained_on(loaded: LoadedRun) -> Dataset:
    """The dataset a run was trained on: its folder where it still is, else its Hub repo at
    the recorded commit."""
    origin = loaded.info.dataset
    if origin.get("path") and Path(origin["path"]).exists():
        return open_dataset(origin["path"])
    if origin.get("url"):
        return open_dataset(origin["url"])
    if origin.get("hub"):
        return open_dataset(origin["hub"], origin.get("revision"))
    raise FileNotFoundError(f"the dataset {loaded.path} was trained on is gone "
                            f"({origin.get('path')}): pass --data")


def run_files(run: Path, include_media: bool = False) -> list[str]:
    """The files of `run` a push uploads (relative paths): RUN_FILES, with the weights of
    the last checkpoint only, and with `include_media` the eval videos (MEDIA_FILES); no
    other audio or video file, whatever its name."""
    from huggingface_hub.utils import filter_repo_objects

    last = latest_checkpoint(run, required=False)
    found = [p.relative_to(run).as_posix() for p in sorted(run.glob("**/*")) if p.is_file()]
    allow = [*RUN_FILES, *(MEDIA_FILES if include_media else ())]
    files = [path for path in filter_repo_objects(found, allow_patterns=allow)
             if not path.startswith("step_") or (last and path.startswith(f"{last.name}/"))]
    files = [path for path in files if include_media or not is_media(path)]
    if not any(path.endswith("model.safetensors") for path in files):
        raise FileNotFoundError(f"{run} has no weights (best/ or step_NNNNNN/"
                                "model.safetensors): train it first")
    return files


def is_media(path: str) -> bool:
    return path.lower().endswith(MEDIA_SUFFIXES)


@dataclass
class RunPush:
    repo_id: str
    files: list[str]
    bytes: dict[str, int]  # size of each file, by path
    card: str
    private: bool  # how the repository is created when it is new
    restrictions: list[str]  # non-commercial or unknown terms of what the run derives from
    commit: str | None = None  # None for a dry run

    @property
    def media(self) -> list[str]:
        return [path for path in self.files if is_media(path)]


def push_run(run: str | Path, repo_id: str, *, public: bool = False,
             include_media: bool = False, data: str | None = None,
             dry_run: bool = False) -> RunPush:
    """Publish `run` to the model repository `repo_id` (created when missing, private unless
    `public`) in one commit: its files (`run_files`; media only with `include_media`, and
    then the card states the dataset's licence for them) and a model card. The card's
    licences come from the dataset the run was trained on (`data`: a folder or Hub id;
    default: the one the run records), which must still be the same dataset (its
    unitaf.json hash). `dry_run`: the files and the card, nothing uploaded."""
    from huggingface_hub import CommitOperationAdd, HfApi, get_token

    from unitaf_data.licences import restrictions

    if not is_hub_id(repo_id):
        raise ValueError(f"{repo_id!r} is not a Hub repository id like owner/name")
    run = Path(run)
    info = read_run_info(run)
    files = run_files(run, include_media)
    config = read_json_file(run / "config.json")
    dataset = _trained_on(info, data)
    card = model_card(run, info, config, dataset, files, repo_id)
    pushed = RunPush(repo_id, files, {f: (run / f).stat().st_size for f in files}, card,
                     not public, restrictions(model_terms(info, config, dataset)))
    if dry_run:
        return pushed
    if get_token() is None:
        raise ValueError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    api = HfApi()
    hub_call(f"create {repo_id}", api.create_repo, repo_id, repo_type="model",
             private=not public, exist_ok=True)
    operations = [CommitOperationAdd(path, run / path) for path in files]
    operations.append(CommitOperationAdd("README.md", card.encode()))
    commit = hub_call(f"commit the run to {repo_id}", api.create_commit, repo_id, operations,
                      commit_message=f"unitaf run (stage {info.stage})", repo_type="model")
    pushed.commit = commit.oid
    return pushed


def _trained_on(info: RunInfo, data: str | None) -> Dataset:
    """The run's dataset, checked to be the one it recorded."""
    recorded = info.dataset
    try:
        dataset = open_dataset(data) if data else open_dataset(
            recorded["hub"], recorded.get("revision")) if "hub" in recorded else \
            open_dataset(recorded["path"])
    except (FileNotFoundError, KeyError) as error:
        raise FileNotFoundError(f"cannot open the dataset the run was trained on "
                                f"({recorded}): pass --data FOLDER_OR_HUB_ID ({error})") from None
    if dataset.file_sha256(dataset.layout.INFO_KEY) != recorded.get("info_sha256"):
        raise ValueError(f"{dataset.origin} is not the dataset the run was trained on (its "
                         "unitaf.json differs): pass --data with that dataset")
    return dataset


def model_terms(info: RunInfo, config: dict[str, Any], dataset: Dataset) -> list[Terms]:
    """What the run's weights derive from: the corpus, the weights behind its input and
    teacher feature sets, and a UniTalker decoder it started from."""
    sets = sorted({info.inputs["backbone_set"], info.inputs["teacher_set"]})
    terms = [source_terms(dataset.info.source)]
    terms += [t for name in sets for t in feature_terms(name, dataset.feature_set(name))]
    if config.get("unitalker_ckpt"):
        terms.append(UNITALKER_TERMS)
    return list({(t.component, t.licence): t for t in terms}.values())


def model_card(run: Path, info: RunInfo, config: dict[str, Any], dataset: Dataset,
               files: list[str], repo_id: str) -> str:
    """README.md of a pushed run (huggingface_hub ModelCard): licences, the dataset, the
    base checkpoints, what the model maps, how to load it, the last validation."""
    from huggingface_hub import ModelCard, ModelCardData

    terms = model_terms(info, config, dataset)
    origin = dataset.origin
    bases = [ref for ref in (config.get("init"), config.get("unitalker_ckpt"))
             if ref and is_hub_id(ref) and not Path(ref).exists()]
    data = ModelCardData(**licence_metadata(terms, one_id=True), library_name="unitaf",
                         tags=["unitaf", "audio-to-face", "talking-face", "blendshapes"],
                         datasets=[origin["hub"]] if "hub" in origin else None,
                         base_model=bases or None)
    args, inputs = info.model, info.inputs
    front = info.front_end
    base_rows = [
        f"| input | `{inputs['backbone_set']}/{inputs['backbone_field']}` | "
        f"{front.get('backend')} backend, model {_model_name(front.get('model'))} |",
        f"| teacher | `{inputs['teacher_set']}/{inputs['teacher_field']}` | "
        f"{dataset.feature_set(inputs['teacher_set']).backend} backend |",
    ]
    if config.get("unitalker_ckpt"):
        base_rows.append(f"| decoder start | `{Path(config['unitalker_ckpt']).name}` | "
                         "UniTalker (Apache-2.0) |")
    if config.get("init"):
        base_rows.append(f"| stage-1 run | `{config['init']}` | projector and backbone |")
    where = (f"[{origin['hub']}](https://huggingface.co/datasets/{origin['hub']}) at commit "
             f"`{origin['revision']}`" if "hub" in origin else f"`{origin['path']}` (local)")
    body = f"""
# UniTAF stage-{info.stage} run

A UniTAF model (projector{" + UniTalker decoder" if info.stage >= 2 else ""}) trained with
`unitaf train`: `{args.backbone}` inputs at 50 Hz → `{args.face_type}` face
({len(args.channels)} channels, names in `model.json`) at {info.fps} fps.

Trained on {where} (`{dataset.info.source}` corpus, unitaf.json sha256
`{info.dataset.get('info_sha256')}`).

## Base checkpoints and inputs

| role | what | from |
|---|---|---|
{chr(10).join(base_rows)}

## Load

```python
from unitaf_model.hub import open_run
run = open_run("{repo_id}")   # safetensors weights and JSON records, nothing pickled
face = run.predict(inputs)    # (T,) codes or (T, D) features at 50 Hz -> (ceil(T/2), C)
```

Files: {", ".join(f"`{f}`" for f in files)}.

{_validation(run, files)}{_media(files, dataset)}## Licence

The weights derive from the data and the models below; their terms apply to the model.
{restriction_prose(terms, "this model")}
{licence_table(terms)}
"""
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))


def _media(files: list[str], dataset: Dataset) -> str:
    """What the pushed media hold and under which terms (the dataset's own)."""
    media = [path for path in files if is_media(path)]
    if not media:
        return ""
    source = source_terms(dataset.info.source)
    return (f"## Media\n\n{len(media)} file(s) ({', '.join(f'`{m}`' for m in media[:5])}"
            f"{' ...' if len(media) > 5 else ''}) hold test clips' audio and faces from the "
            f"dataset: they are the {source.component}'s data, under its licence, "
            f"**{source.licence}**{f' ({source.restriction})' if source.restriction else ''}"
            f". {source.note}\n\n")


def _model_name(model: Any) -> str:
    if isinstance(model, dict):
        return str(model.get("name") or model.get("model") or "(see model.json)")
    return str(model)


def _validation(run: Path, files: list[str]) -> str:
    """The last validation record as a table, and the eval reports pushed."""
    import json

    path = run / "validation.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    if not lines:
        return ""
    last = json.loads(lines[-1])
    rows = "\n".join(f"| {k} | {v:.4g} |" for k, v in last.items() if k != "step")
    reports = sorted({str(PurePosixPath(f).parent) for f in files if f.startswith("eval/")})
    return (f"## Validation at step {last['step']}\n\n| metric | value |\n|---|---|\n{rows}\n"
            f"\nEval reports: {', '.join(f'`{r}/`' for r in reports) or 'none'}.\n\n")
