# Data preparation: generate the demo, fine-tune the backbone on the seen classes, extract features
# from images, download the public archive, and verify every benchmark's files (recording their
# checksums) before anything trains on them. Fine-tuning and extraction decode images on the job's
# threads (--workers) and, on a GPU, hold a slot of the local GPU pool (tfvaegan.gpu_slots).


rule demo_benchmark:
    output:
        split=f"{DATA}/{{folder}}/att_splits.mat",
        images=f"{DATA}/{{folder}}/image_list.txt",
    wildcard_constraints:
        folder=DEMO_FOLDER_REGEX,
    params:
        out_dir=lambda w, output: Path(output.split).parent,
        seed=config["demo"]["seed"],
        images_per_class=config["demo"]["images_per_class"],
        image_size=config["demo"]["image_size"],
    conda:
        CONDA_ENV
    log:
        "logs/demo_benchmark/{folder}.log",
    benchmark:
        "benchmarks/demo_benchmark/{folder}.tsv"
    threads: threads_of("data")
    resources:
        **resources_of("data"),
    shell:
        "python -m tfvaegan demo --out {params.out_dir} --seed {params.seed}"
        " --images-per-class {params.images_per_class} --image-size {params.image_size} > {log} 2>&1"


# `features: finetune`: the backbone trained on the images of trainval_loc only (the seen classes'
# training images; no other image is opened), then extracted with below.
rule finetune_backbone:
    input:
        images=lambda w: CATALOG.image_path(w.folder, w.embedding, "image_list"),
        split=lambda w: CATALOG.split_file(w.folder, w.embedding),
    output:
        FINETUNED_BACKBONE,
    wildcard_constraints:
        folder=FINETUNE_FOLDER_REGEX,
        embedding=FINETUNE_EMBEDDING_REGEX,
    params:
        image_root=lambda w: CATALOG.image_path(w.folder, w.embedding, "image_root"),
        args=lambda w: CATALOG.finetuning_args(w.folder, w.embedding),
        device=lambda w: CATALOG.feature_device(w.folder, w.embedding, "finetuning"),  # its GPU slot (gpu_slots)
    message:
        "{rule}: the backbone fine-tuned on trainval_loc of {input.split} -> {output} ({threads} thread(s), "
        "{resources.gpu} GPU(s), {resources.mem_mb} MB, at most {resources.runtime} min)"
    conda:
        CONDA_ENV
    log:
        "logs/finetune_backbone/{folder}/{embedding}.log",
    benchmark:
        "benchmarks/finetune_backbone/{folder}/{embedding}.tsv"
    threads: threads_of("finetune")
    resources:
        **resources_of("finetune", gpu=True),
    shell:
        "OMP_NUM_THREADS={threads} python -m tfvaegan.gpu_slots --device {params.device}"
        " --gpus-requested {resources.gpu} --"
        " python -m tfvaegan finetune --image-root {params.image_root} --list {input.images}"
        " --split-file {input.split} --out {output} {params.args} --workers {threads} > {log} 2>&1"


rule extract_features:
    input:
        images=lambda w: CATALOG.image_path(w.folder, w.embedding, "image_list"),
        weights=finetuned_backbone,
    output:
        f"{DATA}/{{folder}}/{{embedding}}.mat",
    wildcard_constraints:
        folder=FEATURE_FOLDER_REGEX,
        embedding=FEATURE_EMBEDDING_REGEX,
    params:
        image_root=lambda w: CATALOG.image_path(w.folder, w.embedding, "image_root"),
        args=lambda w: CATALOG.extraction_args(w.folder, w.embedding, finetuned_backbone(w) or None),
        device=lambda w: CATALOG.feature_device(w.folder, w.embedding, "extraction"),  # cpu: no GPU slot
    message:
        "{rule}: the images of {input.images} -> {output} ({threads} thread(s), "
        "{resources.mem_mb} MB, at most {resources.runtime} min)"
    conda:
        CONDA_ENV
    log:
        "logs/extract_features/{folder}/{embedding}.log",
    benchmark:
        "benchmarks/extract_features/{folder}/{embedding}.tsv"
    threads: threads_of("extract")
    resources:
        **resources_of("extract"),
    shell:
        "OMP_NUM_THREADS={threads} python -m tfvaegan.gpu_slots --device {params.device} --"
        " python -m tfvaegan extract --image-root {params.image_root} --list {input.images} --out {output}"
        " {params.args} --workers {threads} > {log} 2>&1"


# The val protocol's selection backbone of a `features: finetune` entry, one per feature file and seed (the seed
# draws the validation split): fine-tuned on the validation split's training part only (no validation-unseen,
# validation-seen or test image is opened), then extracted. A val-protocol run's selection run, and every search
# trial, reads these features (`train --selection-features`); its final run the trainval ones above.
SELECTION_FEATURES = f"{DATA}/{{folder}}/{SELECTION_STEM.format(embedding='{embedding}', seed='{seed}')}.mat"
SELECTION_BACKBONE = SELECTION_FEATURES.removesuffix(".mat") + "_backbone.pt"


use rule finetune_backbone as finetune_selection_backbone with:
    output:
        SELECTION_BACKBONE,
    params:
        image_root=lambda w: CATALOG.image_path(w.folder, w.embedding, "image_root"),
        args=lambda w: CATALOG.selection_finetuning_args(w.folder, w.embedding, int(w.seed)),
        device=lambda w: CATALOG.feature_device(w.folder, w.embedding, "finetuning"),
    message:
        "{rule}: the backbone fine-tuned on the validation split's training part (seed {wildcards.seed}) of "
        "{input.split} -> {output} ({threads} thread(s), {resources.gpu} GPU(s), {resources.mem_mb} MB, "
        "at most {resources.runtime} min)"
    log:
        "logs/finetune_selection_backbone/{folder}/{embedding}_seed{seed}.log",
    benchmark:
        "benchmarks/finetune_selection_backbone/{folder}/{embedding}_seed{seed}.tsv"


use rule extract_features as extract_selection_features with:
    input:
        images=lambda w: CATALOG.image_path(w.folder, w.embedding, "image_list"),
        weights=SELECTION_BACKBONE,
    output:
        SELECTION_FEATURES,
    wildcard_constraints:
        folder=FINETUNE_FOLDER_REGEX,
        embedding=FINETUNE_EMBEDDING_REGEX,
    params:
        image_root=lambda w: CATALOG.image_path(w.folder, w.embedding, "image_root"),
        args=lambda w: CATALOG.extraction_args(w.folder, w.embedding, SELECTION_BACKBONE.format(**w)),
        device=lambda w: CATALOG.feature_device(w.folder, w.embedding, "extraction"),
    log:
        "logs/extract_selection_features/{folder}/{embedding}_seed{seed}.log",
    benchmark:
        "benchmarks/extract_selection_features/{folder}/{embedding}_seed{seed}.tsv"


# `snakemake download_xlsa17` fetches the archive on its own; a run of a listed benchmark (or of an
# entry reading only its files, as cub_transductive) whose files are missing fetches it first.
DOWNLOAD_FILES = list(CATALOG.archive_files)


if DOWNLOAD_FILES:

    localrules:
        download_xlsa17,

    rule download_xlsa17:
        output:
            DOWNLOAD_FILES,
        params:
            data_root=lambda w: DATA,  # the archive's files land below it
            url=config["download"]["url"],
            sha256=config["download"]["sha256"] or "",
            prefix=config["download"]["member_prefix"],
            only=" ".join(f"--only {shlex.quote(CATALOG.config_for(b).dataset)}" for b in CATALOG.downloaded()),
        message:
            "{rule}: the xlsa17 archive ({params.url}, resumable) -> {params.data_root}"
        conda:
            CONDA_ENV
        log:
            "logs/download_xlsa17.log",
        benchmark:
            "benchmarks/download_xlsa17.tsv"
        threads: 1
        resources:
            **resources_of("data"),
        shell:
            "python -m tfvaegan download --url {params.url:q} --sha256 {params.sha256:q}"
            " --data-root {params.data_root} --member-prefix {params.prefix:q} {params.only} > {log} 2>&1"


rule verify_features:
    input:
        checked_data_files,
    output:
        f"{RESULTS}/{{benchmark}}/data.json",
    wildcard_constraints:
        benchmark=BENCHMARK_REGEX,
    params:
        data_root=DATA,
        config=lambda w: CATALOG.benchmark_file(w.benchmark),
        # the dataset of each split; for a custom benchmark also its settings (feature file stem, ...)
        datasets=lambda w: " ".join(filter(None, [CATALOG.settings_args(w.benchmark)]
                                           + [f"--dataset {shlex.quote(d)}" for d in CATALOG.datasets(w.benchmark)])),
        files=lambda w: CATALOG.data_files(w.benchmark),  # a changed location re-verifies
    conda:
        CONDA_ENV
    log:
        "logs/verify_features/{benchmark}.log",
    benchmark:
        "benchmarks/verify_features/{benchmark}.tsv"
    threads: threads_of("data")
    resources:
        **resources_of("data"),
    shell:
        "python -m tfvaegan verify-features --data-root {params.data_root} --config {params.config}"
        " {params.datasets} --out {output} > {log} 2>&1"
