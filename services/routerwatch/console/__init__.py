"""The on-call console of ``routerwatch serve``: a page at ``/`` and the JSON it reads (``/console/api/...``).

:mod:`routerwatch.console.routes` registers both on serve's web app; the page's HTML, JS and CSS ship
with the package (``console/static``), so it works without network access beyond serve itself.
"""
