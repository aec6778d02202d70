# Synthesize unseen-class features with the trained generator (feedback applied). model.pt holds
# the resolved config, so no hyperparameter is passed here.


rule synthesize:
    input:
        model=f"{RUN}/model.pt",
    output:
        f"{RUN}/synthetic.pt",
    wildcard_constraints:
        benchmark=PLAIN_BENCHMARK_REGEX,
    params:
        data_root=DATA,
        device=lambda w: CATALOG.run_device(*run_of(w)),  # the GPU slot it waits for (tfvaegan.gpu_slots)
    conda:
        CONDA_ENV
    log:
        f"logs/synthesize/{RUN_NAME}.log",
    benchmark:
        f"benchmarks/synthesize/{RUN_NAME}.tsv"
    threads: threads_of("synthesize")
    resources:
        **resources_of("synthesize", gpu=True),
    shell:
        "OMP_NUM_THREADS={threads} python -m tfvaegan.gpu_slots --device {params.device}"
        " --gpus-requested {resources.gpu} --"
        " python -m tfvaegan synthesize --model {input.model}"
        " --data-root {params.data_root} --out {output} > {log} 2>&1"


use rule synthesize as synthesize_split with:
    input:
        model=f"{SPLIT_RUN}/model.pt",
    output:
        f"{SPLIT_RUN}/synthetic.pt",
    wildcard_constraints:
        benchmark=SPLIT_BENCHMARK_REGEX,
    log:
        f"logs/synthesize/{SPLIT_RUN_NAME}.log",
    benchmark:
        f"benchmarks/synthesize/{SPLIT_RUN_NAME}.tsv"
