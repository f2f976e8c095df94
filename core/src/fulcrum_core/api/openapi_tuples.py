"""OpenAPI for ``Annotated[tuple[X, ...], Meta(max_length=N)]``: an array of X with its length limits.

litestar's schema for a length-limited collection lists every inner type as a choice of item, and for
a variable-length tuple the ellipsis is one of them: ``items: {oneOf: [X, {}]}``, which tells a client
generator that an item may be anything (``Page.sections``, ``PageSection.lines``). This plugin answers
those fields first, the way litestar answers a tuple without limits.
"""

from __future__ import annotations

from typing import Any, cast

from litestar._openapi.schema_generation import SchemaCreator
from litestar.openapi.spec import OpenAPIType, Reference, Schema
from litestar.params import BodyKwarg, ParameterKwarg
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

__all__ = ["VarTupleSchemaPlugin"]


class VarTupleSchemaPlugin(OpenAPISchemaPlugin):
    """``tuple[X, ...]`` fields with length limits, as ``{type: array, items: X, minItems, maxItems}``."""

    @staticmethod
    def is_plugin_supported_type(value: Any) -> bool:
        return False

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return (
            field_definition.origin is tuple
            and len(field_definition.args) == 2
            and field_definition.args[1] is Ellipsis
            and isinstance(field_definition.kwarg_definition, ParameterKwarg | BodyKwarg)
            and field_definition.kwarg_definition.is_constrained
        )

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        limits = cast("ParameterKwarg | BodyKwarg", field_definition.kwarg_definition)  # checked above
        item: Schema | Reference = schema_creator.for_field_definition(field_definition.inner_types[0])
        return Schema(
            type=OpenAPIType.ARRAY, items=item, min_items=limits.min_items, max_items=limits.max_items
        )
