"""What a person and a dashboard see of a run: the HTML run report, the list of runs, Prometheus metrics.

store.py reads ML Metadata, run_data.py gathers a run's figures from it as plain data, plots.py draws them
(matplotlib, Agg) and html_page.py renders the self-contained page; prometheus.py exports the key figures.
"""
