# Train and evaluate the final classifiers (ZSL, GZSL; OD-GZSL for actions) -> metrics.json.
# Benchmarks with several splits (the action benchmarks) average their splits' metrics into the
# seed folder's metrics.json.


rule classify:
    input:
        model=f"{RESULTS}/{{run}}/model.pt",
        synthetic=f"{RESULTS}/{{run}}/synthetic.pt",
    output:
        f"{RESULTS}/{{run}}/metrics.json",
    wildcard_constraints:
        run=RUN_REGEX,
    params:
        data_root=DATA,
        benchmark=lambda w: parse_run(w.run)["benchmark"],
        variant=lambda w: parse_run(w.run)["variant"],
    conda:
        CONDA_ENV
    log:
        "logs/classify/{run}.log",
    benchmark:
        "benchmarks/classify/{run}.tsv"
    threads: resources_of("classify")["threads"]
    resources:
        mem_mb=resources_of("classify")["mem_mb"],
        runtime=resources_of("classify")["runtime"],
        gpu=gpus,
    shell:
        "OMP_NUM_THREADS={threads} python -m tfvaegan classify --model {input.model}"
        " --synthetic {input.synthetic} --data-root {params.data_root} --benchmark {params.benchmark:q}"
        " --variant {params.variant:q} --out {output} > {log} 2>&1"


rule average_splits:
    input:
        split_metrics,
    output:
        f"{RESULTS}/{{benchmark}}/{{protocol}}/{{variant}}/seed{{seed}}/metrics.json",
    wildcard_constraints:
        benchmark=SPLIT_BENCHMARK_REGEX,
        protocol="paper|val",
        variant=NAME_REGEX,
        seed=r"\d+",
    params:
        n_splits=lambda w: len(splits(w.benchmark)),  # the splits averaged (a changed list reruns)
    conda:
        CONDA_ENV
    log:
        "logs/average_splits/{benchmark}/{protocol}/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/average_splits/{benchmark}/{protocol}/{variant}/seed{seed}.tsv"
    threads: 1
    resources:
        mem_mb=resources_of("tables")["mem_mb"],
        runtime=resources_of("tables")["runtime"],
    shell:
        "python -m tfvaegan average-splits --metrics {input} --out {output} > {log} 2>&1"
