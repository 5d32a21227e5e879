"""``manage.py isobench``: the workloads, servers, clients and checks it measures with.

Nothing here is used while serving; it measures the real app through a real WSGI server.
"""
