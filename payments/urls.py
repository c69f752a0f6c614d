from config.screens import routes

from . import views
from .fraud import views as fraud_views

app_name = "payments"

# Each screen's route and name stand on its view, in its @screen(url=...).
urlpatterns = routes(views, fraud_views)
