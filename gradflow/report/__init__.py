"""Reports: the folder ``gradflow report`` writes, and the diagnosis of a trained model.

:mod:`gradflow.report.instances` draws random instances of cells, :mod:`gradflow.report.figures`
measures and draws them (``gradflow plot`` and the report share them).
"""
