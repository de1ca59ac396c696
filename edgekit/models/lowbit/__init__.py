"""Binary, ternary and hashed networks: the layers (``layers``, ``quantizers``; the HashedNets
position hash is ``edgekit.core.hashing``), their export to standard Conv/Linear
(``materialization``) and the registered nets (``nets``)."""
