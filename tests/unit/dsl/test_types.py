"""Static types: joining event data types, and the fast constructor they share with the AST."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from dsl.frozen import quick_init
from dsl.types import DECIMAL, INT, NULL, STRING, Type, join, object_of


def _enum(*values: str) -> Type:
    return Type("string", values=values)


def test_objects_with_the_same_fields_join_field_by_field() -> None:
    a = object_of([("id", STRING), ("n", INT), ("s", _enum("a"))], label="event a")
    b = object_of([("id", STRING), ("n", DECIMAL), ("s", _enum("b"))], label="event b")
    assert join(a, b) == object_of([("id", STRING), ("n", DECIMAL), ("s", _enum("a", "b"))])
    assert join(a, a) == a


@pytest.mark.parametrize(
    "same",
    [STRING, INT, NULL, STRING.as_optional(), Type("string", format="email"), Type("error")],
)
def test_a_type_joined_with_itself_is_itself(same: Type) -> None:
    assert join(same, same) == same


def test_objects_with_other_fields_keep_them_optional() -> None:
    a = object_of([("id", STRING), ("n", INT)], label="x")
    b = object_of([("n", INT), ("m", STRING)], label="x")
    expected = [("id", STRING.as_optional()), ("n", INT), ("m", STRING.as_optional())]
    assert join(a, b) == object_of(expected, label="x")
    assert join(a, NULL) == a.as_optional()


def test_a_repeated_field_name_joins_as_its_first() -> None:
    a = Type("object", fields=(("n", INT), ("n", STRING)))
    b = Type("object", fields=(("n", INT), ("n", DECIMAL)))
    assert join(a, b) == Type("object", fields=(("n", INT),))


def test_a_type_is_made_pickled_compared_and_hashed_like_a_dataclass() -> None:
    made = Type("string", values=("a",), optional=True)
    assert made == Type(kind="string", values=("a",), optional=True)
    defaults = (made.item, made.fields, made.format, made.label, made.open)
    assert defaults == (None, (), None, None, False)
    assert hash(made) == hash(Type("string", values=("a",), optional=True))
    assert pickle.loads(pickle.dumps(made)) == made  # noqa: S301
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.kind = "int"  # type: ignore[misc]


def test_quick_init_refuses_default_factories() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Listed:
        items: list[int] = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError, match="default factories"):
        quick_init(Listed)
