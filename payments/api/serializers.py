from rest_framework import serializers

from ..models import Merchant


class MerchantOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Merchant
        fields = [
            "id",
            "legal_name",
            "trading_name",
            "country",
            "status",
            "risk_level",
            "contact_name",
            "contact_email",
            "contact_phone",
            "created_at",
            "updated_at",
        ]


class MerchantContactInputSerializer(serializers.Serializer):
    contact_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    contact_email = serializers.EmailField(required=False)
    contact_phone = serializers.CharField(max_length=32, required=False, allow_blank=True)
