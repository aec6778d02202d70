# Train and evaluate the final classifiers (ZSL, GZSL; OD-GZSL for actions) -> metrics.json, with
# per_class.csv (each class's accuracy) and features_2d.png (real against synthetic unseen features, in
# `snakemake --report`) beside it. Benchmarks with several splits (the action benchmarks) average their
# splits' metrics into the run folder's metrics.json; per_class.csv and features_2d.png stay per split.


rule classify:
    input:
        model=f"{RUN}/model.pt",
        synthetic=f"{RUN}/synthetic.pt",
    output:
        metrics=f"{RUN}/metrics.json",
        per_class=f"{RUN}/per_class.csv",
        features_2d=report(f"{RUN}/features_2d.png", caption="../report/features_2d.rst",
                           category="Features: real vs synthetic", subcategory="{benchmark}",
                           labels={"protocol": "{protocol}", "variant": "{variant}", "seed": "{seed}"}),
    wildcard_constraints:
        benchmark=PLAIN_BENCHMARK_REGEX,
    params:
        data_root=DATA,
        benchmark=lambda w: CATALOG.label_of(w.benchmark),  # the catalog name, or its `label`
        variant=lambda w: w.variant,
        device=lambda w: CATALOG.run_device(*run_of(w)),  # the GPU slot it waits for (tfvaegan.gpu_slots)
    message:
        "{rule}: the ZSL and GZSL classifiers -> {output} ({threads} thread(s), {resources.gpu} GPU(s), "
        "{resources.mem_mb} MB, at most {resources.runtime} min)"
    conda:
        CONDA_ENV
    log:
        f"logs/classify/{RUN_NAME}.log",
    benchmark:
        f"benchmarks/classify/{RUN_NAME}.tsv"
    threads: threads_of("classify")
    resources:
        **resources_of("classify", gpu=True),
    shell:
        "OMP_NUM_THREADS={threads} python -m tfvaegan.gpu_slots --device {params.device}"
        " --gpus-requested {resources.gpu} --"
        " python -m tfvaegan classify --model {input.model}"
        " --synthetic {input.synthetic} --data-root {params.data_root} --benchmark {params.benchmark:q}"
        " --variant {params.variant:q} --out {output.metrics} > {log} 2>&1"


use rule classify as classify_split with:
    input:
        model=f"{SPLIT_RUN}/model.pt",
        synthetic=f"{SPLIT_RUN}/synthetic.pt",
    output:
        metrics=f"{SPLIT_RUN}/metrics.json",
        per_class=f"{SPLIT_RUN}/per_class.csv",
        features_2d=report(f"{SPLIT_RUN}/features_2d.png", caption="../report/features_2d.rst",
                           category="Features: real vs synthetic", subcategory="{benchmark}",
                           labels={"protocol": "{protocol}", "variant": "{variant}", "seed": "{seed}",
                                   "split": "{split}"}),
    wildcard_constraints:
        benchmark=SPLIT_BENCHMARK_REGEX,
    log:
        f"logs/classify/{SPLIT_RUN_NAME}.log",
    benchmark:
        f"benchmarks/classify/{SPLIT_RUN_NAME}.tsv"


rule average_splits:
    input:
        split_metrics,
    output:
        f"{RUN}/metrics.json",
    wildcard_constraints:
        benchmark=SPLIT_BENCHMARK_REGEX,
    params:
        n_splits=lambda w: len(CATALOG.splits(w.benchmark)),  # the splits averaged (a changed list reruns)
    conda:
        CONDA_ENV
    log:
        f"logs/average_splits/{RUN_NAME}.log",
    benchmark:
        f"benchmarks/average_splits/{RUN_NAME}.tsv"
    threads: 1
    resources:
        **resources_of("tables"),
    shell:
        "python -m tfvaegan average-splits --metrics {input} --out {output} > {log} 2>&1"
