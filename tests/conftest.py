"""Fixtures shared across test files: the loopback fakes and the real llama.cpp servers."""

pytest_plugins = ["tests.support.fake_github", "tests.support.fault_server", "tests.support.llama_server"]
