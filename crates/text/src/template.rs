//! Chat templates rendered with minijinja, Python-compatible.
