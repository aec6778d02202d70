# The hyperparameter search of a `search` section (config/search.yaml; config/README.md):
#   snakemake search --cores all --configfile config/search.yaml
#   results/search/{benchmark}/trials/{trial}/trial.json   one trial = one job: the val protocol's selection
#                                                          run of one configuration, on the validation split only
#   results/search/{benchmark}/trials.csv, best.yaml, trials.png   the trials ranked by the validation metric
#   results/search/{benchmark}/final/metrics.json          best.yaml as one val-protocol run: retrained on
#                                                          trainval, evaluated once on the test set
# A trial is named by its settings (tfvaegan.search.space.trial_id), so more trials or grid values run
# only the new ones; a trial interrupted mid-training resumes from its checkpoint. The section and
# every trial's config are checked here, so a bad one stops Snakemake before any job.
from tfvaegan.search import space as search_space

SEARCH = f"{RESULTS}/search/{{benchmark}}"
NO_SEARCH = ("the `search` target needs a `search` section in the config: "
             "snakemake search --cores all --configfile config/search.yaml (config/README.md)")
try:  # trial name -> its settings, in the draws' order
    SEARCH_SPEC, SEARCH_BASE, SEARCH_TRIALS = search_space.plan_workflow_search(CATALOG)
except ConfigError as exc:
    _fail(str(exc))
# The device of the search's runs (the trials' and the final run's): the searched run's (its GPU slot).
SEARCH_DEVICE = SEARCH_SPEC and CATALOG.run_device(SEARCH_SPEC.benchmark, "val", SEARCH_SPEC.variant, SEARCH_SPEC.seed)


wildcard_constraints:
    trial=_alternatives(SEARCH_TRIALS),


rule search_trial:
    input:
        data=f"{RESULTS}/{{benchmark}}/data.json",
        selection=lambda w: CATALOG.selection_features(w.benchmark, "val", SEARCH_SPEC.seed),  # [] but fine-tuned
    output:
        f"{SEARCH}/trials/{{trial}}/trial.json",
    wildcard_constraints:
        benchmark=_alternatives(SEARCH_BENCHMARKS),
    params:
        data_root=DATA,
        config=lambda w: CATALOG.benchmark_file(w.benchmark),
        sets=lambda w: " ".join(filter(None, [
            CATALOG.run_settings(w.benchmark, "val", SEARCH_SPEC.variant, SEARCH_SPEC.seed)[0],
            CATALOG.selection_args(w.benchmark, "val", SEARCH_SPEC.seed)])),  # + a fine-tuned one's selection features
        trial=lambda w: " ".join(shlex.quote(f"--trial={k}={json.dumps(v)}") for k, v in SEARCH_TRIALS[w.trial].items()),
        values=lambda w: json.dumps({**SEARCH_BASE, **SEARCH_TRIALS[w.trial]}, sort_keys=True),  # a change reruns it
        device=SEARCH_DEVICE,  # the GPU slot it waits for (tfvaegan.gpu_slots)
    message:
        "{rule}: trial {wildcards.trial} on the validation split -> {output} ({threads} thread(s), "
        "{resources.gpu} GPU(s), {resources.mem_mb} MB, at most {resources.runtime} min)"
    conda:
        CONDA_ENV
    log:
        "logs/search_trial/{benchmark}/{trial}.log",
    benchmark:
        "benchmarks/search_trial/{benchmark}/{trial}.tsv"
    threads: threads_of("train")
    resources:
        **resources_of("train", gpu=True),
    shell:
        "OMP_NUM_THREADS={threads} python -m tfvaegan.gpu_slots --device {params.device}"
        " --gpus-requested {resources.gpu} --"
        " python -m tfvaegan search trial --data-root {params.data_root}"
        " --config {params.config} {params.sets} {params.trial} --out {output} > {log} 2>&1"


rule search_collect:
    input:
        lambda w: [f"{SEARCH}/trials/{trial}/trial.json".format(**w) for trial in SEARCH_TRIALS],  # draws' order
    output:
        table=report(f"{SEARCH}/trials.csv", caption="../report/search_trials.rst", category="Search"),
        best=report(f"{SEARCH}/best.yaml", caption="../report/search_best.rst", category="Search"),
        figure=report(f"{SEARCH}/trials.png", caption="../report/search_plot.rst", category="Search"),
        selection=f"{SEARCH}/final/model.selection.json",  # the best trial's selection run, for the final run
    wildcard_constraints:
        benchmark=_alternatives(SEARCH_BENCHMARKS),
    params:
        metric=lambda w: SEARCH_SPEC.metric,
        out_dir=lambda w, output: Path(output.table).parent,
        final_model=lambda w, output: Path(output.selection).parent / "model.pt",
    conda:
        CONDA_ENV
    log:
        "logs/search_collect/{benchmark}.log",
    benchmark:
        "benchmarks/search_collect/{benchmark}.tsv"
    threads: threads_of("tables")
    resources:
        **resources_of("tables"),
    shell:
        "MPLBACKEND=Agg python -m tfvaegan search collect --trials {input} --metric {params.metric}"
        " --out-dir {params.out_dir} --final-model {params.final_model} > {log} 2>&1"


rule search_final:
    input:
        data=f"{RESULTS}/{{benchmark}}/data.json",
        best=f"{SEARCH}/best.yaml",
        selection=f"{SEARCH}/final/model.selection.json",
        selection_features=lambda w: CATALOG.selection_features(w.benchmark, "val", SEARCH_SPEC.seed),
    output:
        model=f"{SEARCH}/final/model.pt",
        log=f"{SEARCH}/final/train_log.csv",
        synthetic=f"{SEARCH}/final/synthetic.pt",
        metrics=report(f"{SEARCH}/final/metrics.json", caption="../report/search_final.rst", category="Search"),
    wildcard_constraints:
        benchmark=_alternatives(SEARCH_BENCHMARKS),
    params:
        data_root=DATA,
        out_dir=lambda w, output: Path(output.metrics).parent,
        selection=lambda w: CATALOG.selection_args(w.benchmark, "val", SEARCH_SPEC.seed),  # as the trials read
        device=SEARCH_DEVICE,
    message:
        "{rule}: {input.best} retrained on trainval, tested once -> {output.metrics} ({threads} thread(s), "
        "{resources.gpu} GPU(s), {resources.mem_mb} MB, at most {resources.runtime} min)"
    conda:
        CONDA_ENV
    log:
        "logs/search_final/{benchmark}.log",
    benchmark:
        "benchmarks/search_final/{benchmark}.tsv"
    threads: threads_of("train")
    resources:
        **resources_of("train", gpu=True),
    shell:
        "OMP_NUM_THREADS={threads} python -m tfvaegan.gpu_slots --device {params.device}"
        " --gpus-requested {resources.gpu} --"
        " python -m tfvaegan run --data-root {params.data_root} --config {input.best}"
        " --benchmark {wildcards.benchmark:q} --variant search --out {params.out_dir} {params.selection} > {log} 2>&1"


rule search:
    input:
        lambda w: [path.format(benchmark=SEARCH_SPEC.benchmark) for path in (
            f"{SEARCH}/trials.csv", f"{SEARCH}/best.yaml", f"{SEARCH}/trials.png", f"{SEARCH}/final/metrics.json")]
        if SEARCH_SPEC else _fail(NO_SEARCH),
