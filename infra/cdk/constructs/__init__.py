"""One construct per domain: storage, layers, functions and the API that exposes them."""
