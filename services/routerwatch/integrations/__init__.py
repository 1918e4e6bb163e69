"""Integrations that feed routerwatch from routers it did not write.

``routerwatch.integrations.litellm``: a LiteLLM callback (extra ``routerwatch[litellm]``). Each
integration module imports its third-party package; this package itself imports nothing.
"""
