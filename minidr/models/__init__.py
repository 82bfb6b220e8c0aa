"""Models: the Encoder base and RetrievalEncoder protocol, the bi-encoder, the
cross-encoder, backbone architectures and loading, the teacher."""
