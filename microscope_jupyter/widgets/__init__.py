"""Interactive widgets over a recording (or a live node), built with anywidget.

    from microscope_jupyter.widgets import SupervisionTree, SequenceDiagram, TimeTravel, Timeline
    tree = SupervisionTree(s)          # click a process: tree.selected
    seq = SequenceDiagram(s)           # click an arrow: seq.selected, seq.selected_message
    tt = TimeTravel(s); tt.link(seq)   # the slider follows the diagram's cursor
    graph = ProcessGraph(s); graph.link(tt)   # play: every linked widget follows
    ov = s.overview()                  # SystemOverview: the node at a glance; click a process

Each widget is one Python class and one JS entry (``js/src/<name>.js``,
bundled into ``widgets/static/``); traitlets are the source of truth. Where
no widget manager runs (exported HTML, GitHub), each shows a static HTML/SVG
rendering instead, so a shared notebook still has its pictures.
"""

from ._base import bundle_source
from .overview import SystemOverview
from .process_graph import ProcessGraph
from .sequence_diagram import SequenceDiagram
from .source_view import SourceView
from .supervision_tree import SupervisionTree
from .time_travel import TimeTravel
from .timeline import Timeline

__all__ = ["SupervisionTree", "SequenceDiagram", "TimeTravel", "Timeline", "ProcessGraph",
           "SourceView", "SystemOverview", "bundle_source"]
