"""Serializer parts that both apps' APIs share."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from .permissions import may_see_contact


class PersonalFieldsSerializer(serializers.ModelSerializer):
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
