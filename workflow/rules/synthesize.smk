# Synthesize unseen-class features with the trained generator (feedback applied). model.pt holds
# the resolved config, so no hyperparameter is passed here.


rule synthesize:
    input:
        model=f"{RESULTS}/{{run}}/model.pt",
    output:
        f"{RESULTS}/{{run}}/synthetic.pt",
    wildcard_constraints:
        run=RUN_REGEX,
    params:
        data_root=DATA,
    conda:
        CONDA_ENV
    log:
        "logs/synthesize/{run}.log",
    benchmark:
        "benchmarks/synthesize/{run}.tsv"
    threads: resources_of("synthesize")["threads"]
    resources:
        mem_mb=resources_of("synthesize")["mem_mb"],
        runtime=resources_of("synthesize")["runtime"],
        gpu=gpus,
    shell:
        "OMP_NUM_THREADS={threads} python -m tfvaegan synthesize --model {input.model}"
        " --data-root {params.data_root} --out {output} > {log} 2>&1"
