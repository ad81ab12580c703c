"""The artifact layer: the typed manifest (`Manifest`, `Variant`), `open_artifact`, and the one writer.

    from l2v.artifact import open_artifact
    art = open_artifact("artifacts/smollm2")          # manifest checked; file sizes checked on use
    art.manifest.graph.dim, art.variant("w4").files, art.preprocessor().batch(["text"])

Importing this package imports neither torch nor transformers.
"""
from l2v.artifact.artifact import Artifact, is_artifact, open_artifact, read_manifest
from l2v.artifact.manifest import (MANIFEST, SCHEMA_VERSION, AdapterRecord, FileRecord, Graph, Manifest, ModelInfo,
                                   SentenceTransformersInfo, TokenizerInfo, Variant)
from l2v.artifact.writer import ArtifactWriter, VariantWriter, check_out_dir, check_variant_name, variant_file

__all__ = ["Artifact", "ArtifactWriter", "AdapterRecord", "FileRecord", "Graph", "MANIFEST", "Manifest", "ModelInfo",
           "SCHEMA_VERSION", "SentenceTransformersInfo", "TokenizerInfo", "Variant", "VariantWriter", "check_out_dir",
           "check_variant_name",
           "is_artifact", "open_artifact", "read_manifest", "variant_file"]
