"""The fleet dashboard: a read-only web view of the fleet (`edgelens-fleet dashboard`).

    series.py   metrics over time per device and per model version, from the fleet store
    charts.py   line charts as coordinates for server-rendered SVG
    view.py     what each page shows (the status rows, the rollout file, the plots)
    app.py      the Starlette app: routes, templates, security headers
    cli.py      the subcommand: options, the listening socket, uvicorn
"""
