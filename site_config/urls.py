from django.contrib import admin
from django.urls import include, path

from chat.views import counted_login, login_view

urlpatterns = [
    # Before Django's own: the same logins, with attempts counted (chat/accounts.py).
    path("admin/login/", counted_login(admin.site.login)),
    path("admin/", admin.site.urls),
    path("accounts/login/", login_view, name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("chat.urls")),
]
