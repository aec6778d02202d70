# Train the generative model of one run (of one split of a run, for the action benchmarks).
# params.values holds the run's resolved config, so a changed hyperparameter of one benchmark reruns
# exactly that benchmark's runs. The command resumes from <model>.ckpt after an interruption (train
# writes resumable checkpoints). GPU jobs run on a slot of the local GPU pool (tfvaegan.gpu_slots: one card, seen
# alone through CUDA_VISIBLE_DEVICES; waiting while every slot is taken).


rule train:
    input:
        data=f"{RESULTS}/{{benchmark}}/data.json",
        selection=lambda w: CATALOG.selection_features(w.benchmark, w.protocol, int(w.seed)),  # [] but val, fine-tuned
    output:
        model=f"{RUN}/model.pt",
        log=f"{RUN}/train_log.csv",
    wildcard_constraints:
        benchmark=PLAIN_BENCHMARK_REGEX,
    params:
        data_root=DATA,
        config=lambda w: CATALOG.benchmark_file(w.benchmark),
        # the run's --set arguments, and a val-protocol fine-tuned run's --selection-features (unchanged for others)
        sets=lambda w: " ".join(filter(None, [CATALOG.run_settings(*run_of(w))[0],
                                              CATALOG.selection_args(w.benchmark, w.protocol, int(w.seed))])),
        values=lambda w: CATALOG.run_settings(*run_of(w))[1],
        device=lambda w: CATALOG.run_device(*run_of(w)),  # the GPU slot it waits for (tfvaegan.gpu_slots)
    message:
        "{rule}: TF-VAEGAN -> {output.model} ({threads} thread(s), {resources.gpu} GPU(s), "
        "{resources.mem_mb} MB, at most {resources.runtime} min)"
    conda:
        CONDA_ENV
    log:
        f"logs/train/{RUN_NAME}.log",
    benchmark:
        f"benchmarks/train/{RUN_NAME}.tsv"
    threads: threads_of("train")
    resources:
        **resources_of("train", gpu=True),
    shell:
        "OMP_NUM_THREADS={threads} python -m tfvaegan.gpu_slots --device {params.device}"
        " --gpus-requested {resources.gpu} --"
        " python -m tfvaegan train --data-root {params.data_root} --config {params.config}"
        " {params.sets} --model {output.model} --log {output.log} > {log} 2>&1"


use rule train as train_split with:
    output:
        model=f"{SPLIT_RUN}/model.pt",
        log=f"{SPLIT_RUN}/train_log.csv",
    wildcard_constraints:
        benchmark=SPLIT_BENCHMARK_REGEX,
    log:
        f"logs/train/{SPLIT_RUN_NAME}.log",
    benchmark:
        f"benchmarks/train/{SPLIT_RUN_NAME}.tsv"
