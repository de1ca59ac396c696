"""Deep Compression (Han et al.): magnitude pruning, trained weight sharing, Huffman/rANS
coding, and the ``.ekz`` file format (``ekz``). Steps are imported by full path, so that
importing one never loads the back-ends of the others."""
