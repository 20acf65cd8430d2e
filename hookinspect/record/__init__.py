"""Record webhooks inside an app, where no tunnel reaches (a staging deployment, a preview):
`ASGIRecorder` and `WSGIRecorder` wrap an app, record the requests the rules select and the
app's answers into a store file (`listen`'s format) or a relay channel, and change nothing the
app sees or answers."""

from hookinspect.record.asgi import ASGIRecorder
from hookinspect.record.settings import RecordSettings, record_settings
from hookinspect.record.wsgi import WSGIRecorder

__all__ = ["ASGIRecorder", "RecordSettings", "WSGIRecorder", "record_settings"]
