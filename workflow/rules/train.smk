# Train the generative model of one run. params.values holds the run's resolved config, so a
# changed hyperparameter of one benchmark reruns exactly that benchmark's runs. The command
# resumes from <model>.ckpt after an interruption (train writes resumable checkpoints).


rule train:
    input:
        data=data_record,
    output:
        model=f"{RESULTS}/{{run}}/model.pt",
        log=f"{RESULTS}/{{run}}/train_log.csv",
    wildcard_constraints:
        run=RUN_REGEX,
    params:
        data_root=DATA,
        config=lambda w: benchmark_file(parse_run(w.run)["benchmark"]),
        sets=lambda w: train_settings(w)[0],
        values=lambda w: train_settings(w)[1],
    conda:
        CONDA_ENV
    log:
        "logs/train/{run}.log",
    benchmark:
        "benchmarks/train/{run}.tsv"
    threads: resources_of("train")["threads"]
    resources:
        mem_mb=resources_of("train")["mem_mb"],
        runtime=resources_of("train")["runtime"],
        gpu=gpus,
    shell:
        "OMP_NUM_THREADS={threads} python -m tfvaegan train --data-root {params.data_root} --config {params.config}"
        " {params.sets} --model {output.model} --log {output.log} > {log} 2>&1"
