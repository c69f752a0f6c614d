from django.apps import AppConfig


class KycConfig(AppConfig):
    name = "kyc"
    verbose_name = "KYC"

    def ready(self) -> None:
        from audits.registry import register_audited

        from . import models

        register_audited(models.KycCase)
        # The storage path is a random name; it means nothing to a reader and is masked.
        register_audited(models.KycDocument, mask_fields=["file"])
        register_audited(models.CaseNote)
        register_audited(models.ScreeningResult)
        register_audited(models.BeneficialOwner)
        # A list load is audited; its entries are reference data replaced whole with it.
        register_audited(models.ScreeningListLoad)
