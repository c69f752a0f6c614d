from config.screens import routes

from . import views

app_name = "kyc"

# Each screen's route and name stand on its view, in its @screen(url=...).
urlpatterns = routes(views)
