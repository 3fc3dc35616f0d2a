"""``hyperspace ui``: a web UI over a store, served by Starlette (the optional extra ``ui``).

``views`` asks the store what a page shows, through the queries the CLI uses; ``app`` turns
that into HTML pages (Jinja2, every value escaped) and the small JSON answers that the
pages' script polls to stay live.
"""
