"""Kept only so editor models registered before the regroup by phase still load: their pickled model
class is ``fashion_edit.editor_model.EditorModel``. New code imports :mod:`fashion_edit.serving.pyfunc`."""
from fashion_edit.serving.pyfunc import EditorModel

__all__ = ["EditorModel"]
