"""A small inventory module: the file the latency measurement types into."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path


@dataclass
class Item:
    sku: str
    name: str
    price: float
    quantity: int = 0
    tags: list[str] = field(default_factory=list)

    @property
    def value(self) -> float:
        return self.price * self.quantity

    def to_dict(self) -> dict:
        return {
            "sku": self.sku,
            "name": self.name,
            "price": self.price,
            "quantity": self.quantity,
            "tags": list(self.tags),
        }


@dataclass
class Movement:
    sku: str
    delta: int
    day: date
    reason: str = ""


class InventoryError(Exception):
    pass


class Inventory:
    def __init__(self) -> None:
        self.items: dict[str, Item] = {}
        self.movements: list[Movement] = []

    def add(self, item: Item) -> None:
        if item.sku in self.items:
            raise InventoryError(f"duplicate sku {item.sku}")
        self.items[item.sku] = item

    def remove(self, sku: str) -> Item:
        try:
            return self.items.pop(sku)
        except KeyError:
            raise InventoryError(f"unknown sku {sku}") from None

    def receive(self, sku: str, count: int, day: date) -> None:
        if count <= 0:
            raise InventoryError("count must be positive")
        self.items[sku].quantity += count
        self.movements.append(Movement(sku, count, day, "received"))

    def ship(self, sku: str, count: int, day: date) -> None:
        item = self.items[sku]
        if count > item.quantity:
            raise InventoryError(f"only {item.quantity} of {sku} in stock")
        item.quantity -= count
        self.movements.append(Movement(sku, -count, day, "shipped"))

    def total_value(self) -> float:
        return sum(item.value for item in self.items.values())

    def by_tag(self) -> dict[str, list[Item]]:
        groups: dict[str, list[Item]] = defaultdict(list)
        for item in self.items.values():
            for tag in item.tags:
                groups[tag].append(item)
        return dict(groups)

    def low_stock(self, threshold: int = 5) -> list[Item]:
        return sorted(
            (item for item in self.items.values() if item.quantity < threshold),
            key=lambda item: item.quantity,
        )

    def history(self, sku: str) -> list[Movement]:
        return [m for m in self.movements if m.sku == sku]

    def shipped_between(self, start: date, end: date) -> int:
        total = 0
        for movement in self.movements:
            if movement.reason == "shipped" and start <= movement.day <= end:
                total += -movement.delta
        return total

    def save_json(self, path: Path) -> None:
        data = [item.to_dict() for item in self.items.values()]
        path.write_text(json.dumps(data, indent=2))

    @classmethod
    def load_json(cls, path: Path) -> Inventory:
        inventory = cls()
        for row in json.loads(path.read_text()):
            inventory.add(Item(**row))
        return inventory

    def export_csv(self, path: Path) -> None:
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["sku", "name", "price", "quantity", "value"])
            for item in sorted(self.items.values(), key=lambda i: i.sku):
                writer.writerow([item.sku, item.name, item.price, item.quantity, item.value])

    def restock_report(self, threshold: int = 5) -> str:
        lines = ["sku,name,quantity"]
        for item in self.low_stock(threshold):
            lines.append(f"{item.sku},{item.name},{item.quantity}")
        return "\n".join(lines)

    def most_valuable(self, count: int = 3) -> list[Item]:
        items = sorted(self.items.values(), key=lambda item: item.value, reverse=True)
        return items[:count]

    def average_price(self) -> float:
        if not self.items:
            return 0.0
        return sum(item.price for item in self.items.values()) / len(self.items)


def main() -> None:
    inventory = Inventory()
    inventory.add(Item("A-1", "bolt", 0.25, 400, ["hardware"]))
    inventory.add(Item("A-2", "nut", 0.1, 800, ["hardware"]))
    inventory.add(Item("B-1", "drill", 59.0, 3, ["tools"]))
    print(inventory.total_value())


if __name__ == "__main__":
    main()
