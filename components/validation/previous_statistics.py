"""The Resolver strategy that hands the gate the statistics of earlier runs (its drift baseline)."""
from typing import Dict, List, Optional

import ml_metadata as mlmd
from tfx import types
from tfx.dsl.components.common import resolver

# Enough to find an earlier span after several re-runs of the current one; the gate picks among them.
MAX_CANDIDATES = 20


class RecentStatisticsStrategy(resolver.ResolverStrategy):
    """The newest statistics artifacts of the pipeline, possibly none.

    TFX's LatestArtifactStrategy returns None when nothing exists yet, which fails the resolver node (with
    an error in the log) on every first run; an empty list is what "no baseline yet" means here.
    """

    def resolve_artifacts(self, store: mlmd.MetadataStore, input_dict: Dict[str, List[types.Artifact]]
                          ) -> Optional[Dict[str, List[types.Artifact]]]:
        return {key: sorted(artifacts, key=lambda artifact: artifact.id, reverse=True)[:MAX_CANDIDATES]
                for key, artifacts in input_dict.items()}
