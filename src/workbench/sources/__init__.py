"""Shop-floor sources: the tag dictionary, the connectors, the spool and the collector service.

* :mod:`~workbench.sources.tags` — the tag dictionary (``pipelines/plant/tags.yaml``).
* :mod:`~workbench.sources.base` — the contract every connector keeps (:class:`Reading`,
  :class:`Batch`, :class:`Gap`, :class:`Rejected`).
* :mod:`~workbench.sources.mqtt`, :mod:`~workbench.sources.opcua`, :mod:`~workbench.sources.modbus`
  — the connectors (imported on demand: each pulls in its protocol library).
* :mod:`~workbench.sources.spool` — store-and-forward between the collector and the warehouse.
* :mod:`~workbench.sources.collector` — ``workbench collect``.

Sources never import analytics; normalisation shared by all protocols is in
:mod:`workbench.ingest.stream`.
"""

# Only the light, dependency-free parts here: ingest.stream imports sources.base, and the spool and
# collector import ingest.stream, so re-exporting them from this package would be circular.
from workbench.sources.base import Batch, Connector, Gap, Reading, Rejected
from workbench.sources.tags import Register, Source, Tag, TagDictionary, load_tags

__all__ = ["Batch", "Connector", "Gap", "Reading", "Register", "Rejected", "Source", "Tag", "TagDictionary",
           "load_tags"]
