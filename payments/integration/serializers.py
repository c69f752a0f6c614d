"""Serializer parts that both apps' APIs share."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from .permissions import may_see_contact

# The base classes below say what they do in comments: the schema would show a docstring as
# the description of every serializer built on them.


# A row for output whose foreign keys read as the related rows' ids: `merchant` is the
# `merchant_id` column, read-only, with no query for the related row.
class RowOutputSerializer(serializers.ModelSerializer):
    def build_relational_field(
        self, field_name: str, relation_info: Any
    ) -> tuple[type[serializers.Field], dict[str, Any]]:
        return serializers.IntegerField, {
            "source": relation_info.model_field.attname,
            "read_only": True,
        }


class PersonalFieldsSerializer(RowOutputSerializer):
    """Leaves `personal_fields` out of the output unless the caller may see personal data
    (the scope merchants:contact, see permissions.may_see_contact)."""

    personal_fields: tuple[str, ...] = ()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        request = self.context.get("request")
        if request is None or not may_see_contact(request):
            for name in self.personal_fields:
                data.pop(name, None)
        return data


# An input that refuses the fields it does not have, said out loud rather than ignored: a caller
# sending one (a status, say) must not believe it took. `unknown_field` says why.
class ClosedInputSerializer(serializers.Serializer):
    unknown_field = "Not a field of this input."

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        initial = self.initial_data if isinstance(self.initial_data, dict) else {}
        others = sorted(str(k) for k in initial if k not in self.fields)
        if others:
            raise serializers.ValidationError({name: [self.unknown_field] for name in others})
        return attrs
