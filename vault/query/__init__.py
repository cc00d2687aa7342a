"""The query service: plan -> read -> kernels -> disclosure control.

The one place where a statistic is computed for a caller. It receives a policy Decision and
applies its obligations; it never decides access itself.
"""
