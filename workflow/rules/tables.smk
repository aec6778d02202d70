# Aggregate every run's metrics.json into the CSV tables (methods.csv: the lineage side by side), the paper's
# main table (main_table.md, main_table.tex) and the figures (marked for `snakemake --report`).


rule tables:
    input:
        metrics=all_metrics(),
        paper=str(PROJECT_ROOT / "config" / "paper_results.csv"),
    output:
        zsl=report(f"{RESULTS}/tables/zsl.csv", caption="../report/zsl.rst", category="Tables"),
        gzsl=report(f"{RESULTS}/tables/gzsl.csv", caption="../report/gzsl.rst", category="Tables"),
        ablation=report(f"{RESULTS}/tables/ablation.csv", caption="../report/ablation.rst", category="Tables"),
        methods=report(f"{RESULTS}/tables/methods.csv", caption="../report/methods.rst", category="Tables"),
        main_md=report(f"{RESULTS}/tables/main_table.md", caption="../report/main_table.rst", category="Tables"),
        main_tex=report(f"{RESULTS}/tables/main_table.tex", caption="../report/main_table.rst", category="Tables"),
    params:
        out_dir=lambda w, output: Path(output.zsl).parent,
    conda:
        CONDA_ENV
    log:
        "logs/tables.log",
    benchmark:
        "benchmarks/tables.tsv"
    threads: threads_of("tables")
    resources:
        **resources_of("tables"),
    shell:
        "python -m tfvaegan tables --metrics {input.metrics} --paper {input.paper}"
        " --out-dir {params.out_dir} > {log} 2>&1"


rule plots:
    input:
        metrics=all_metrics(),
        train_logs=all_train_logs(),
        paper=str(PROJECT_ROOT / "config" / "paper_results.csv"),
    output:
        paper_vs_ours=report(f"{RESULTS}/plots/paper_vs_ours.png", caption="../report/paper_vs_ours.rst",
                             category="Plots"),
        curves=report(f"{RESULTS}/plots/training_curves.png", caption="../report/training_curves.rst",
                      category="Plots"),
    params:
        out_dir=lambda w, output: Path(output.curves).parent,
    conda:
        CONDA_ENV
    log:
        "logs/plots.log",
    benchmark:
        "benchmarks/plots.tsv"
    threads: threads_of("tables")
    resources:
        **resources_of("tables"),
    shell:
        "MPLBACKEND=Agg python -m tfvaegan plots --metrics {input.metrics} --paper {input.paper}"
        " --out-dir {params.out_dir} > {log} 2>&1"
