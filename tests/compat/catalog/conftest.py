collect_ignore_glob = ["reference/*"]  # AWS's scripts are run by test_reference_scripts.py, not collected
