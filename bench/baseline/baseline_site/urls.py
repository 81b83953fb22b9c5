from django.urls import path
from rows.views import RowCreateApi

urlpatterns = [path("api/rows/", RowCreateApi.as_view(), name="row-create")]
