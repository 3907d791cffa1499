"""Lets the tests import corral_example_hook from this folder when it is not installed.

pytest puts the folder of a conftest.py on sys.path, from here or from the corral repository's root.
"""
