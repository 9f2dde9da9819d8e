"""Read API of sensors: /sensors, /sensors/{sensor_id}, .../readings, .../predictions."""
from rest_framework.routers import SimpleRouter

from .views import SensorViewSet

router = SimpleRouter(trailing_slash=False)
router.register("sensors", SensorViewSet, basename="api-sensor")

urlpatterns = router.urls
