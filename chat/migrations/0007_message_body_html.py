from django.db import migrations, models

from chat.formatting import render

BATCH = 500


def render_existing(apps, schema_editor):
    """Messages stored before formatting get their HTML now, so reading never has to render."""
    Message = apps.get_model("chat", "Message")
    pending = Message.objects.filter(body_html="").only("pk", "body").order_by("pk")
    last_pk = 0
    while batch := list(pending.filter(pk__gt=last_pk)[:BATCH]):
        for message in batch:
            message.body_html = render(message.body)
        Message.objects.bulk_update(batch, ["body_html"])
        last_pk = batch[-1].pk


class Migration(migrations.Migration):
    dependencies = [("chat", "0006_report_limits")]

    operations = [
        migrations.AddField(
            model_name="message",
            name="body_html",
            field=models.TextField(default="", editable=False),
        ),
        migrations.RunPython(render_existing, migrations.RunPython.noop),
    ]
