# Every address already stored starts unconfirmed: nothing proved it belongs to its account (issue 16
# found outside addresses set by strangers), so no mention email goes to it until its owner follows a
# link sent from the settings page.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0014_attachments"),
    ]

    operations = [
        migrations.AddField(
            model_name="mentionemails",
            name="confirmed_email",
            field=models.EmailField(blank=True, default="", max_length=254),
        ),
    ]
