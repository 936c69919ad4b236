"""Small charts drawn with QPainter: a live loss curve, and before/after bars for a dream's report."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

MARGIN = 28
AXIS = QColor("#94a3b8")
LINE = QColor("#4338ca")
BEFORE = QColor("#cbd5e1")
AFTER = QColor("#4338ca")
TEXT = QColor("#334155")
MIN_HEIGHT = 140


class LossCurve(QWidget):
    """A value per training step (the loss, or GRPO's reward), redrawn as points arrive; the axes fit the data."""

    def __init__(self, placeholder: str = "loss appears here while dreaming") -> None:
        super().__init__()
        self.placeholder = placeholder
        self.points: list[tuple[int, float]] = []
        self.setMinimumHeight(MIN_HEIGHT)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def add(self, step: int, loss: float) -> None:
        self.points.append((step, loss))
        self.update()

    def clear(self) -> None:
        self.points.clear()
        self.update()

    def set_points(self, points: list[tuple[int, float]]) -> None:
        """Shows a finished run's values at once."""
        self.points = list(points)
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802 (Qt naming)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        area = QRectF(self.rect()).adjusted(MARGIN, MARGIN / 2, -MARGIN / 2, -MARGIN)
        painter.setPen(QPen(AXIS, 1))
        painter.drawLine(area.bottomLeft(), area.bottomRight())
        painter.drawLine(area.bottomLeft(), area.topLeft())
        painter.setPen(TEXT)
        if not self.points:
            painter.drawText(area, Qt.AlignmentFlag.AlignCenter, self.placeholder)
            return
        steps = [s for s, _ in self.points]
        losses = [value for _, value in self.points]
        low, high = min(losses), max(losses)
        first, last = min(steps), max(steps)
        span_x = max(last - first, 1)
        span_y = max(high - low, 1e-6)

        def at(step: int, loss: float) -> QPointF:
            return QPointF(area.left() + (step - first) / span_x * area.width(),
                           area.bottom() - (loss - low) / span_y * area.height())

        path = QPainterPath(at(*self.points[0]))
        for point in self.points[1:]:
            path.lineTo(at(*point))
        painter.drawText(QRectF(0, area.top() - 6, MARGIN - 2, 14), Qt.AlignmentFlag.AlignRight, f"{high:.2f}")
        painter.drawText(QRectF(0, area.bottom() - 8, MARGIN - 2, 14), Qt.AlignmentFlag.AlignRight, f"{low:.2f}")
        painter.drawText(QRectF(area.left(), area.bottom() + 2, area.width(), 14), Qt.AlignmentFlag.AlignRight, f"step {last}")
        painter.setPen(QPen(LINE, 2))
        painter.drawPath(path)


class BeforeAfterBars(QWidget):
    """Pairs of bars (before, after) per measure, as fractions 0..1 labelled in percent: a dream's effect at a glance."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, float, float]] = []
        self.setMinimumHeight(MIN_HEIGHT)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def show_rows(self, rows: list[tuple[str, float, float]]) -> None:
        self.rows = rows
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802 (Qt naming)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        area = QRectF(self.rect()).adjusted(MARGIN / 2, MARGIN / 2, -MARGIN / 2, -MARGIN)
        painter.setPen(TEXT)
        if not self.rows:
            painter.drawText(area, Qt.AlignmentFlag.AlignCenter, "no measurements yet")
            return
        group = area.width() / len(self.rows)
        bar = group / 3
        for index, (label, before, after) in enumerate(self.rows):
            left = area.left() + index * group + bar / 2
            for offset, value, colour in ((0, before, BEFORE), (bar, after, AFTER)):
                height = max(0.0, min(1.0, value)) * area.height()
                painter.fillRect(QRectF(left + offset, area.bottom() - height, bar, height), colour)
            painter.setPen(TEXT)
            painter.drawText(QRectF(left - bar / 2, area.bottom() + 2, group, 14), Qt.AlignmentFlag.AlignCenter, label)
            painter.drawText(QRectF(left - bar / 2, area.top() - 14, group, 14), Qt.AlignmentFlag.AlignCenter,
                             f"{before * 100:.0f}→{after * 100:.0f}")
